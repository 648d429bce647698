# Copyright (c) pera-mm contributors. All rights reserved.
"""The Potsdam, Vaihingen and LoveDA converters on archives built here from the real samples.

The ISPRS tests turn the MMSeg-converted 512 crop (and its label, valued 0..5)
back into colour-coded labels, make larger fake tiles of it (with clutter and a
few off-palette label pixels added), and zip them under the official names. The
LoveDA test zips the real Train/Rural tiles as Train/Val/Test archives. Each
output is then read by MMSeg's dataset class with our base config's pipelines.
"""

import io
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from PIL import Image

from pera_mm.datasets.converters import (
    ArchiveSource,
    isprs_colour_to_index,
    isprs_index_to_colour,
    sliding_window_starts,
)
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

TOOLS = REPO_ROOT / 'tools' / 'dataset_converters'
BASE = REPO_ROOT / 'configs' / '_base_' / 'datasets'
TILE_HW = (900, 1000)  # 3 x 3 crops of 512 at stride 256: rows 0/256/388, cols 0/256/488


def _tif(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='TIFF')
    return buffer.getvalue()


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()


def _zip(path: Path, members: dict) -> Path:
    with zipfile.ZipFile(path, 'w') as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _fake_tile(crop_img, crop_ann, seed):
    """A TILE_HW tile from flipped copies of the crop; labels 0..6 (clutter block added)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(2):
        row = [crop_img, crop_img[:, ::-1]] if i == 0 else [crop_img[::-1], crop_img[::-1, ::-1]]
        rows.append(np.concatenate(row, axis=1))
    img = np.concatenate(rows, axis=0)
    ann_rows = []
    for i in range(2):
        row = [crop_ann, crop_ann[:, ::-1]] if i == 0 else [crop_ann[::-1], crop_ann[::-1, ::-1]]
        ann_rows.append(np.concatenate(row, axis=1))
    ann = np.concatenate(ann_rows, axis=0)
    shift = rng.integers(0, 24, 2)
    img = np.ascontiguousarray(
        img[shift[0] : shift[0] + TILE_HW[0], shift[1] : shift[1] + TILE_HW[1]]
    )
    ann = np.ascontiguousarray(
        ann[shift[0] : shift[0] + TILE_HW[0], shift[1] : shift[1] + TILE_HW[1]]
    )
    ann[100:140, 700:760] = 6  # clutter, absent from the sample crop
    return img, ann


def _colour_label(index, noisy=False):
    colour = isprs_index_to_colour(index)
    if noisy:  # compression-like noise on clutter pixels: still clutter
        colour[100:102, 700:710] = (250, 3, 2)
    return colour


@pytest.fixture(scope='module')
def isprs_crop(shared_path):
    get = shared_path
    return {
        name: (
            np.array(Image.open(get(f'ISPRS/{folder}/img_dir/{stem}.png')).convert('RGB')),
            np.array(Image.open(get(f'ISPRS/{folder}/ann_dir/{stem}.png'))),
        )
        for name, folder, stem in (
            ('potsdam', 'Potsdam_mmseg', '2_10_0_0_512_512'),
            ('vaihingen', 'Vaihingen_mmseg', 'area1_0_0_512_512'),
        )
    }


@pytest.fixture
def potsdam_download(tmp_path, isprs_crop):
    """2_Ortho_RGB.zip + both label zips with tiles 2_10, 2_11 (train) and 2_13 (val)."""
    crop_img, crop_ann = isprs_crop['potsdam']
    tiles = {
        t: _fake_tile(crop_img, crop_ann, seed) for seed, t in enumerate(('2_10', '2_11', '2_13'))
    }
    download = tmp_path / 'download'
    download.mkdir()
    images = {}
    for t, (img, _) in tiles.items():
        images[f'2_Ortho_RGB/top_potsdam_{t}_RGB.tif'] = _tif(img)
        images[f'2_Ortho_RGB/top_potsdam_{t}_RGB.tfw'] = b'0.05\n0\n0\n-0.05\n0\n0\n'
    _zip(download / '2_Ortho_RGB.zip', images)
    _zip(
        download / '5_Labels_all_noBoundary.zip',
        {
            f'top_potsdam_{t}_label_noBoundary.tif': _tif(_colour_label(ann, noisy=t == '2_10'))
            for t, (_, ann) in tiles.items()
        },
    )
    full = {}
    for t, (_, ann) in tiles.items():
        full_ann = np.where(ann == 0, 1, ann)  # the full labels have no black boundary
        full[f'top_potsdam_{t}_label.tif'] = _tif(_colour_label(full_ann))
    _zip(download / '5_Labels_all.zip', full)
    return download, tiles


def _read(path):
    return np.array(Image.open(path))


def _build(cfg_dataset, data_root, scope='mmseg'):
    init_default_scope(scope)
    cfg = Config(dict(cfg_dataset))
    cfg.data_root = str(data_root)
    return DATASETS.build(cfg.to_dict())


def _check_train_sample(sample, num_classes):
    """A random-resized-cropped sample: image and label agree, at most 512 (padded later)."""
    inputs, gt = sample['inputs'], sample['data_samples'].gt_sem_seg.data
    assert inputs.shape[0] == 3 and inputs.shape[1:] == gt.shape[1:]
    assert 256 <= min(inputs.shape[1:]) <= max(inputs.shape[1:]) <= 512
    assert set(np.unique(gt.numpy())) <= set(range(num_classes)) | {255}


def _perfect_prediction_metrics(evaluator_cfg, dataset, sample):
    """The config's evaluator on one sample predicted exactly as its label."""
    from mmengine.evaluator import Evaluator

    evaluator = Evaluator(dict(evaluator_cfg))  # class names checked against the dataset here
    evaluator.dataset_meta = dataset.metainfo
    data_sample = sample['data_samples']
    data_sample.set_data(dict(pred_sem_seg=data_sample.gt_sem_seg.clone()))
    evaluator.process([data_sample.to_dict()])
    return evaluator.evaluate(1)


def test_sliding_window_has_a_true_stride():
    assert sliding_window_starts(6000, 512, 256) == [256 * i for i in range(22)] + [5488]
    assert len(sliding_window_starts(6000, 512, 256)) == math.ceil((6000 - 512) / 256) + 1 == 23
    assert sliding_window_starts(512, 512, 256) == [0]
    assert sliding_window_starts(900, 512, 256) == [0, 256, 388]
    assert sliding_window_starts(1024, 512, 512) == [0, 512]
    with pytest.raises(PeraConfigError, match='stride 600 > crop 512'):
        sliding_window_starts(1000, 512, 600)
    with pytest.raises(PeraDataError, match='smaller than the 512-pixel crop'):
        sliding_window_starts(500, 512, 256)


def test_isprs_colours_round_trip():
    index = np.arange(7, dtype=np.uint8).repeat(3).reshape(3, 7)
    back, stats = isprs_colour_to_index(isprs_index_to_colour(index))
    np.testing.assert_array_equal(back, index)
    assert stats == dict(off_palette=0, unknown=0)
    colour = np.array([[[250, 3, 2], [255, 0, 255]]], dtype=np.uint8)  # noisy red, magenta
    back, stats = isprs_colour_to_index(colour)
    assert back.tolist() == [[6, 0]] and stats == dict(off_palette=1, unknown=1)


@pytest.mark.needs_shared
def test_potsdam_crops_whole_val_tiles_and_dataset(potsdam_download, tmp_path, load_script, capsys):
    download, tiles = potsdam_download
    out = tmp_path / 'potsdam'
    load_script(TOOLS / 'potsdam.py').main([str(download), '-o', str(out)])
    log = capsys.readouterr().out
    assert 'warning: 35 of the 38 split tiles are not in' in log
    assert '20 off-palette pixel(s) snapped' in log  # the noisy clutter of tile 2_10

    ys, xs = (
        sliding_window_starts(TILE_HW[0], 512, 256),
        sliding_window_starts(TILE_HW[1], 512, 256),
    )
    train = sorted(p.name for p in (out / 'img_dir' / 'train').iterdir())
    assert len(train) == 2 * len(ys) * len(xs) == 18  # ceil((L - 512) / 256) + 1 per axis
    assert train == sorted(p.name for p in (out / 'ann_dir' / 'train').iterdir())
    for t in ('2_10', '2_11'):
        img, ann = tiles[t]
        for y in ys:
            for x in xs:
                name = f'{t}_{x}_{y}_{x + 512}_{y + 512}.png'
                np.testing.assert_array_equal(
                    _read(out / 'img_dir/train' / name), img[y : y + 512, x : x + 512]
                )
                np.testing.assert_array_equal(
                    _read(out / 'ann_dir/train' / name), ann[y : y + 512, x : x + 512]
                )
    assert sorted(p.name for p in (out / 'img_dir' / 'val').iterdir()) == ['2_13.png']
    np.testing.assert_array_equal(_read(out / 'img_dir/val/2_13.png'), tiles['2_13'][0])
    np.testing.assert_array_equal(_read(out / 'ann_dir/val/2_13.png'), tiles['2_13'][1])

    cfg = Config.fromfile(BASE / 'potsdam_512x512.py')
    train_set = _build(cfg.train_dataloader.dataset, out)
    assert len(train_set) == 18
    _check_train_sample(train_set[0], num_classes=6)
    val_set = _build(cfg.val_dataloader.dataset, out)
    sample = val_set[0]
    assert tuple(sample['inputs'].shape) == (3, *TILE_HW)  # the whole tile
    gt = sample['data_samples'].gt_sem_seg.data.numpy()[0]
    raw = tiles['2_13'][1]
    np.testing.assert_array_equal(gt, np.where(raw == 0, 255, raw.astype(int) - 1))
    metrics = _perfect_prediction_metrics(cfg.val_evaluator, val_set, sample)
    assert metrics['mIoU'] == metrics['mF1'] == metrics['mF1_no_clutter'] == 100.0
    assert metrics['F1.clutter'] == 100.0  # the clutter block added to the tile


@pytest.mark.needs_shared
def test_potsdam_full_labels_and_cropped_val(potsdam_download, tmp_path, load_script):
    download, tiles = potsdam_download
    out = tmp_path / 'potsdam_full'
    script = load_script(TOOLS / 'potsdam.py')
    script.main(
        [str(download), '-o', str(out), '--labels', 'full', '--val-mode', 'crops', '--nproc', '2']
    )
    assert len(list((out / 'ann_dir' / 'val').iterdir())) == 9
    name = '2_13_488_388_1000_900.png'  # the last crop ends at the border
    ann = _read(out / 'ann_dir/val' / name)
    expected = np.where(tiles['2_13'][1] == 0, 1, tiles['2_13'][1])[388:900, 488:1000]
    np.testing.assert_array_equal(ann, expected)


@pytest.mark.needs_shared
def test_vaihingen_areas_and_dataset(tmp_path, isprs_crop, load_script):
    crop_img, crop_ann = isprs_crop['vaihingen']
    areas = {a: _fake_tile(crop_img, crop_ann, seed) for seed, a in enumerate(('area1', 'area2'))}
    download = tmp_path / 'download'
    download.mkdir()
    images = {f'top/top_mosaic_09cm_{a}.tif': _tif(img) for a, (img, _) in areas.items()}
    # the image archive also holds the participants' labels under the same file names
    images['gts_for_participants/top_mosaic_09cm_area1.tif'] = _tif(
        _colour_label(areas['area1'][1])
    )
    _zip(download / 'ISPRS_semantic_labeling_Vaihingen.zip', images)
    _zip(
        download / 'ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip',
        {
            f'top_mosaic_09cm_{a}_noBoundary.tif': _tif(_colour_label(ann))
            for a, (_, ann) in areas.items()
        },
    )
    out = tmp_path / 'vaihingen'
    load_script(TOOLS / 'vaihingen.py').main([str(download), '-o', str(out)])
    assert len(list((out / 'img_dir' / 'train').iterdir())) == 9
    np.testing.assert_array_equal(
        _read(out / 'img_dir/train/area1_256_388_768_900.png'), areas['area1'][0][388:900, 256:768]
    )
    np.testing.assert_array_equal(_read(out / 'ann_dir/val/area2.png'), areas['area2'][1])
    cfg = Config.fromfile(BASE / 'vaihingen_512x512.py')
    _check_train_sample(_build(cfg.train_dataloader.dataset, out)[0], num_classes=6)
    assert tuple(_build(cfg.val_dataloader.dataset, out)[0]['inputs'].shape) == (3, *TILE_HW)


def _one_error_line(capsys, code, excinfo):
    assert excinfo.value.code == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    return err


@pytest.mark.needs_shared
def test_potsdam_label_size_mismatch_names_the_file(potsdam_download, load_script, capsys):
    download, tiles = potsdam_download
    labels = download / '5_Labels_all_noBoundary.zip'
    members = {}  # the label of 2_11 is replaced by a narrower one
    with zipfile.ZipFile(labels) as archive:
        for name in archive.namelist():
            members[name] = archive.read(name)
    members['top_potsdam_2_11_label_noBoundary.tif'] = _tif(
        _colour_label(tiles['2_11'][1][:, :990])
    )
    _zip(labels, members)
    with pytest.raises(SystemExit) as excinfo:
        load_script(TOOLS / 'potsdam.py').main([str(download), '-o', str(download.parent / 'o')])
    err = _one_error_line(capsys, 4, excinfo)
    assert f'{labels}:top_potsdam_2_11_label_noBoundary.tif is 900x990 (HxW) but its image' in err
    assert '2_Ortho_RGB/top_potsdam_2_11_RGB.tif is 900x1000' in err


@pytest.mark.needs_shared
def test_potsdam_corrupt_and_missing_archives(potsdam_download, load_script, capsys):
    download, _ = potsdam_download
    script = load_script(TOOLS / 'potsdam.py')
    out = str(download.parent / 'o')
    (download / '5_Labels_all.zip').unlink()
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out, '--labels', 'full'])
    err = _one_error_line(capsys, 5, excinfo)
    assert f'{download / "5_Labels_all.zip"}: not found' in err
    (download / '2_Ortho_RGB.zip').write_bytes(b'PK\x03\x04 truncated download')
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out])
    err = _one_error_line(capsys, 4, excinfo)
    assert f'{download / "2_Ortho_RGB.zip"}: not a readable zip archive' in err


@pytest.mark.needs_shared
def test_potsdam_tile_without_label_and_undecodable_member(potsdam_download, load_script, capsys):
    download, tiles = potsdam_download
    script = load_script(TOOLS / 'potsdam.py')
    out = str(download.parent / 'o')
    labels = download / '5_Labels_all_noBoundary.zip'
    kept = {'top_potsdam_2_10_label_noBoundary.tif': _tif(_colour_label(tiles['2_10'][1]))}
    kept['top_potsdam_2_13_label_noBoundary.tif'] = b'not a tiff'
    _zip(labels, kept)
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out])
    err = _one_error_line(capsys, 4, excinfo)
    assert f'{labels}: no noBoundary label for tile 2_11' in err
    kept['top_potsdam_2_11_label_noBoundary.tif'] = _tif(_colour_label(tiles['2_11'][1]))
    _zip(labels, kept)
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out])
    err = _one_error_line(capsys, 4, excinfo)
    assert f'{labels}:top_potsdam_2_13_label_noBoundary.tif: not a decodable image' in err


@pytest.fixture
def loveda_download(tmp_path, shared_path):
    """Train.zip (Rural 0, Urban 1), Val.zip (Rural 2), Test.zip (Urban 2 as 5000)."""
    rural = shared_path('LoveDA/Train/Rural')
    img = {i: (rural / 'images_png' / f'{i}.png').read_bytes() for i in (0, 1, 2)}
    ann = {i: (rural / 'masks_png' / f'{i}.png').read_bytes() for i in (0, 1, 2)}
    download = tmp_path / 'download'
    download.mkdir()
    _zip(
        download / 'Train.zip',
        {
            'Train/Rural/images_png/0.png': img[0],
            'Train/Rural/masks_png/0.png': ann[0],
            'Train/Urban/images_png/1.png': img[1],
            'Train/Urban/masks_png/1.png': ann[1],
        },
    )
    _zip(
        download / 'Val.zip',
        {'Val/Rural/images_png/2.png': img[2], 'Val/Rural/masks_png/2.png': ann[2]},
    )
    _zip(download / 'Test.zip', {'Test/Urban/images_png/5000.png': img[2]})
    return download, img, ann


@pytest.mark.needs_shared
def test_loveda_layout_bytes_and_datasets(loveda_download, tmp_path, load_script):
    download, img, ann = loveda_download
    out = tmp_path / 'loveDA'
    load_script(TOOLS / 'loveda.py').main([str(download), '-o', str(out)])
    assert (out / 'img_dir/train/0.png').read_bytes() == img[0]
    assert (out / 'ann_dir/train/1.png').read_bytes() == ann[1]
    assert (out / 'img_dir/val/2.png').read_bytes() == img[2]
    assert (out / 'ann_dir/val/2.png').read_bytes() == ann[2]
    assert (out / 'img_dir/test/5000.png').read_bytes() == img[2]
    assert not (out / 'ann_dir' / 'test').exists()

    cfg = Config.fromfile(BASE / 'loveda_512x512.py')
    train_set = _build(cfg.train_dataloader.dataset, out)
    assert len(train_set) == 2
    _check_train_sample(train_set[1], num_classes=7)
    val = _build(cfg.val_dataloader.dataset, out)[0]
    assert tuple(val['inputs'].shape) == (3, 1024, 1024)
    raw = np.array(Image.open(io.BytesIO(ann[2])))
    np.testing.assert_array_equal(
        val['data_samples'].gt_sem_seg.data.numpy()[0], np.where(raw == 0, 255, raw.astype(int) - 1)
    )
    server = Config.fromfile(BASE / 'loveda_512x512_test-server.py')
    assert server.test_evaluator.type == 'LoveDASubmissionMetric'
    test_set = _build(server.test_dataloader.dataset, out)
    names = [Path(test_set.get_data_info(i)['img_path']).name for i in range(len(test_set))]
    assert names == ['5000.png']
    sample = test_set[0]
    assert tuple(sample['inputs'].shape) == (3, 1024, 1024)
    assert 'gt_sem_seg' not in sample['data_samples']


@pytest.mark.needs_shared
def test_loveda_bad_inputs_name_the_file(loveda_download, load_script, capsys):
    download, img, ann = loveda_download
    script = load_script(TOOLS / 'loveda.py')
    out = str(download.parent / 'o')
    small = np.array(Image.open(io.BytesIO(ann[2])))[:512, :512]
    _zip(
        download / 'Val.zip',
        {'Val/Rural/images_png/2.png': img[2], 'Val/Rural/masks_png/2.png': _png(small)},
    )
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out])
    err = _one_error_line(capsys, 4, excinfo)
    val_zip = download / 'Val.zip'
    assert f'{val_zip}:Val/Rural/masks_png/2.png is 512x512 (HxW) but its image' in err
    _zip(val_zip, {'Val/Rural/images_png/2.png': img[2]})
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out])
    err = _one_error_line(capsys, 4, excinfo)
    assert f'{val_zip}:Val/Rural/images_png/2.png: has no mask' in err
    val_zip.write_bytes(b'garbage')
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out])
    assert f'{val_zip}: not a readable zip archive' in _one_error_line(capsys, 4, excinfo)
    val_zip.unlink()
    with pytest.raises(SystemExit) as excinfo:
        script.main([str(download), '-o', out])
    assert f'{val_zip}: not found' in _one_error_line(capsys, 5, excinfo)


@pytest.mark.needs_shared
def test_loveda_from_extracted_folders(loveda_download, tmp_path):
    download, img, _ = loveda_download
    extracted = tmp_path / 'extracted'
    for stem in ('Train', 'Val'):
        with zipfile.ZipFile(download / f'{stem}.zip') as archive:
            archive.extractall(extracted)
    source = ArchiveSource.locate(extracted, 'Train')
    assert source.members == sorted(
        ['Train/Rural/images_png/0.png', 'Train/Rural/masks_png/0.png',
         'Train/Urban/images_png/1.png', 'Train/Urban/masks_png/1.png']
    )  # fmt: skip
    from pera_mm.datasets.converters import convert_loveda

    lines = []
    counts = convert_loveda(extracted, tmp_path / 'out', log=lines.append)
    assert counts == dict(train=2, val=1)
    assert any('the test split is skipped' in line for line in lines)
    assert (tmp_path / 'out/img_dir/train/1.png').read_bytes() == img[1]
    with pytest.raises(PeraFileNotFoundError, match='Train.zip: not found'):
        convert_loveda(tmp_path / 'empty', tmp_path / 'out2')
