# Copyright (c) pera-mm contributors. All rights reserved.
"""tools/dataset_converters/build_annotation.py on real tiles with planted corrupt files.

A tree of real AID / RSSCN7 JPEGs and LoveDA PNGs gets a truncated JPEG, a zero-byte
file, a PNG named ``.jpg``, a text file named ``.png`` and a truncated GeoTIFF. The
report must list each with its reason, and the list file must load into
``UnlabeledImageDataset`` (every listed file decoding through its pipeline).
"""

import shutil

import pytest
from mmengine.registry import DefaultScope

from pera_mm.datasets import UnlabeledImageDataset
from pera_mm.datasets.converters.annotation_index import (
    read_report,
    sniff_format,
    walk_images,
    write_annotation,
)
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.errors import PeraConfigError, PeraFileNotFoundError

TOOL = REPO_ROOT / 'tools' / 'dataset_converters' / 'build_annotation.py'
OSCD_B02 = (
    'OSCD/Onera Satellite Change Detection dataset - Images/paris/imgs_1/'
    'S2A_OPER_MSI_L1C_TL_MPS__20161130T130757_A007527_T31UDQ_B02.tif'
)


@pytest.fixture
def tile_tree(tmp_path, shared_path):
    """root/{aid,rsscn7/a,rsscn7/b,loveda,geo}/... with 5 planted bad files."""
    root = tmp_path / 'tiles'
    aid = sorted(shared_path('AID_unlabeled/images').glob('*.jpg'))[:12]
    grass = sorted(shared_path('RSSCN7/aGrass').glob('*.jpg'))[:5]
    field = sorted(shared_path('RSSCN7/bField').glob('*.jpg'))[:5]
    loveda = sorted(shared_path('LoveDA/Train/Rural/images_png').glob('*.png'))
    for folder, files in (
        ('aid', aid),
        ('rsscn7/a', grass),
        ('rsscn7/b', field),
        ('loveda', loveda),
    ):
        (root / folder).mkdir(parents=True)
        for path in files:
            shutil.copy(path, root / folder / path.name)
    (root / 'geo').mkdir()
    shutil.copy(shared_path(OSCD_B02), root / 'geo' / 'b02.tif')
    good = sorted(str(p.relative_to(root)) for p in root.rglob('*') if p.is_file())
    data = aid[0].read_bytes()
    (root / 'aid' / 'truncated.jpg').write_bytes(data[: len(data) // 2])
    (root / 'rsscn7' / 'a' / 'empty.jpg').write_bytes(b'')
    shutil.copy(loveda[0], root / 'rsscn7' / 'b' / 'really_png.jpg')
    (root / 'loveda' / 'notes.png').write_text('not an image\n')
    tif = (root / 'geo' / 'b02.tif').read_bytes()
    (root / 'geo' / 'cut.tif').write_bytes(tif[: len(tif) // 3])
    (root / 'loveda' / 'readme.txt').write_text('ignored: not an image extension')
    return root, good


EXPECTED_REASONS = {
    'aid/truncated.jpg': 'undecodable:',
    'rsscn7/a/empty.jpg': 'file is empty (0 bytes)',
    'rsscn7/b/really_png.jpg': 'wrong extension: PNG data in a .jpg file',
    'loveda/notes.png': 'wrong extension: not an image format we recognise in a .png file',
    'geo/cut.tif': 'undecodable:',
}


@pytest.mark.needs_shared
@pytest.mark.parametrize('workers', [1, 2])
def test_decode_check_lists_each_bad_file_with_its_reason(tile_tree, tmp_path, workers):
    root, good = tile_tree
    out = tmp_path / 'meta' / 'train.txt'
    result = write_annotation(str(root), str(out), check='decode', workers=workers)
    assert out.read_text().splitlines() == good  # sorted, relative to the root
    rejected = dict(read_report(f'{out}.rejected.tsv'))
    assert sorted(rejected) == sorted(EXPECTED_REASONS)
    for path, reason in EXPECTED_REASONS.items():
        assert rejected[path].startswith(reason), (path, rejected[path])
    assert result['accepted'] == len(good) == 26 and result['rejected'] == 5
    assert result['reasons'] == {
        'undecodable': 2,
        'file is empty (0 bytes)': 1,
        'wrong extension': 2,
    }


@pytest.mark.needs_shared
def test_header_check_is_cheap_and_catches_empty_and_misnamed(tile_tree):
    root, good = tile_tree
    accepted, rejected = walk_images(str(root), check='header')
    # truncated files keep a valid header: only a decode finds them
    assert sorted(accepted) == sorted(good + ['aid/truncated.jpg', 'geo/cut.tif'])
    assert [p for p, _ in rejected] == [
        'loveda/notes.png',
        'rsscn7/a/empty.jpg',
        'rsscn7/b/really_png.jpg',
    ]
    none_accepted, none_rejected = walk_images(str(root), check='none')
    assert len(none_accepted) == len(good) + 5 and none_rejected == []


@pytest.mark.needs_shared
def test_list_file_loads_into_the_consuming_dataset(tile_tree, tmp_path):
    root, good = tile_tree
    out = tmp_path / 'train.txt'
    rgb = [p for p in good if not p.endswith('.tif')]
    write_annotation(str(root), str(out), check='decode', extensions=('.jpg', '.png'))
    assert out.read_text().splitlines() == rgb
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = UnlabeledImageDataset(
            ann_file=str(out),
            data_prefix=dict(img_path=str(root)),
            pipeline=[dict(type='LoadRGBImageFromFile')],
            test_mode=True,  # nothing may be skipped: every listed file must decode
        )
        assert len(dataset) == len(rgb) == 25
        shapes = {dataset[i]['img'].shape for i in range(len(dataset))}
    assert shapes == {(150, 150, 3), (400, 400, 3), (1024, 1024, 3)}
    assert dataset.num_skipped == 0


@pytest.mark.needs_shared
def test_cli_writes_files_and_prints_counts(tile_tree, tmp_path, capsys, load_script):
    root, good = tile_tree
    cli = load_script(TOOL)
    out = tmp_path / 'list.txt'
    cli.main([str(root), '-o', str(out), '--check', 'decode', '--decoder', 'multiband'])
    text = capsys.readouterr().out
    assert f'{len(good)} files listed in {out}' in text and '5 rejected' in text
    assert out.read_text().splitlines() == good


def test_sniffing_and_bad_input(tmp_path, capsys, load_script):
    assert sniff_format(b'\x89PNG\r\n\x1a\n....') == 'PNG'
    assert sniff_format(b'\xff\xd8\xff\xe0') == 'JPEG'
    assert sniff_format(b'II*\x00abcd') == 'TIFF'
    assert sniff_format(b'RIFF\x00\x00\x00\x00WEBP') == 'WEBP'
    assert sniff_format(b'hello') is None
    with pytest.raises(PeraConfigError, match="check 'full'"):
        walk_images(str(tmp_path), check='full')
    with pytest.raises(PeraFileNotFoundError):
        walk_images(str(tmp_path / 'nope'))
    with pytest.raises(SystemExit) as exit_info:
        load_script(TOOL).main([str(tmp_path / 'nope'), '-o', str(tmp_path / 'l.txt')])
    assert exit_info.value.code == 5
    assert capsys.readouterr().err.strip() == (
        f'build_annotation.py: file not found: {tmp_path / "nope"}: no such folder'
    )
