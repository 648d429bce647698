# Copyright (c) pera-mm contributors. All rights reserved.
"""tools/dataset_converters/split_scene_dataset.py on the real AID and RSSCN7 layouts."""

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pera_mm.datasets.scene_split import (
    find_class_images,
    split_file_names,
    split_scene_dataset,
    stratified_split,
)
from pera_mm.testing import REPO_ROOT
from pera_mm.utils.cli import PeraCliErrors
from pera_mm.utils.errors import PeraConfigError, PeraDataError, PeraFileNotFoundError

TOOL = REPO_ROOT / 'tools' / 'dataset_converters' / 'split_scene_dataset.py'


def _read(path):
    rows = [line.rsplit(' ', 1) for line in Path(path).read_text().splitlines()]
    return [(p, int(label)) for p, label in rows]


def _class_dirs(root):
    return sorted(e.name for e in os.scandir(root) if e.is_dir())


@pytest.mark.needs_shared
@pytest.mark.parametrize(
    'dataset,ratio,n_train,n_test',
    [
        ('AID_150px/AID', 0.2, 2, 8),  # AID's 20 / 80
        ('AID_150px/AID', 0.8, 8, 2),  # UCM's 80 / 20
        ('RSSCN7', 0.5, 5, 5),  # UCM's 50 / 50
    ],
)
def test_stratified_counts_on_real_data(
    shared_path, tmp_path, capsys, load_script, dataset, ratio, n_train, n_test
):
    root = shared_path(dataset)
    tool = load_script(TOOL)
    result = tool.main([str(root), '--out-dir', str(tmp_path), '--train-ratio', str(ratio)])
    classes = (tmp_path / 'classes.txt').read_text().splitlines()
    # classes: the sub-folders, sorted (the README at the top level is not one)
    assert classes == _class_dirs(root) == result['classes']
    top_files = [e.name for e in os.scandir(root) if e.is_file()]
    assert not set(top_files) & set(classes)
    if dataset == 'RSSCN7':
        assert 'README.md' in top_files
    train_name, test_name = split_file_names(ratio, 0)
    train, test = _read(tmp_path / train_name), _read(tmp_path / test_name)
    assert Counter(label for _, label in train) == {i: n_train for i in range(len(classes))}
    assert Counter(label for _, label in test) == {i: n_test for i in range(len(classes))}
    # disjoint, complete, labels = the folder of each path, every path exists
    assert not {p for p, _ in train} & {p for p, _ in test}
    listed = sorted(p for p, _ in train + test)
    on_disk = sorted(
        f'{c}/{f}' for c in classes for f in os.listdir(root / c) if f.lower().endswith('.jpg')
    )
    assert listed == on_disk
    assert all(classes[label] == p.split('/')[0] for p, label in train + test)
    # the printed per-class counts
    out = capsys.readouterr().out
    assert f'{0:>5}  {classes[0]:<{max(map(len, classes))}}  {n_train:>6}  {n_test:>6}' in out
    assert f'{len(train):>6}  {len(test):>6}  ({len(classes)} classes' in out


@pytest.mark.needs_shared
def test_seed_determinism(shared_path, tmp_path):
    root = str(shared_path('AID_150px/AID'))
    a = split_scene_dataset(root, str(tmp_path / 'a'), 0.2, seed=0, check_images=False)
    b = split_scene_dataset(root, str(tmp_path / 'b'), 0.2, seed=0, check_images=False)
    c = split_scene_dataset(root, str(tmp_path / 'c'), 0.2, seed=1, check_images=False)
    assert a['train'] == b['train'] and a['test'] == b['test']
    for kind in ('train', 'test'):
        assert Path(a['files'][kind]).read_bytes() == Path(b['files'][kind]).read_bytes()
    assert a['train'] != c['train']
    assert Counter(label for _, label in c['train']) == Counter(label for _, label in a['train'])
    # a class's split depends on the seed and its own files only: dropping other classes
    classes, images = find_class_images(root)
    train_one, _ = stratified_split({classes[3]: images[classes[3]]}, [classes[3]], 0.2, seed=0)
    assert [p for p, _ in train_one] == [p for p, label in a['train'] if label == 3]


def _tmp_dataset(root, shared_aid, classes=('Airport', 'Beach')):
    """Two AID classes by symlink plus a .tif and an off-size image in tmp."""
    for name in classes:
        (root / name).mkdir(parents=True)
        for f in sorted(os.listdir(shared_aid / name)):
            (root / name / f).symlink_to(shared_aid / name / f)
    first = sorted((shared_aid / classes[0]).iterdir())[0]
    Image.open(first).save(root / classes[0] / 'extra_tif.tif')
    Image.open(first).resize((150, 141)).save(root / classes[1] / 'extra_offsize.png')
    return root


@pytest.mark.needs_shared
def test_tif_and_off_size_images_are_listed(shared_path, tmp_path):
    root = _tmp_dataset(tmp_path / 'ds', shared_path('AID_150px/AID'))
    result = split_scene_dataset(str(root), str(tmp_path / 'meta'), 0.5, seed=0)
    listed = {p for p, _ in result['train'] + result['test']}
    assert {'Airport/extra_tif.tif', 'Beach/extra_offsize.png'} <= listed
    assert result['counts'] == {'Airport': (6, 5), 'Beach': (6, 5)}  # round(11 * 0.5) = 6


@pytest.mark.needs_shared
def test_bad_input_is_one_line(shared_path, tmp_path, capsys, load_script):
    tool = load_script(TOOL)
    root = _tmp_dataset(tmp_path / 'ds', shared_path('AID_150px/AID'))

    def run(argv):
        with pytest.raises(SystemExit) as exc:
            PeraCliErrors.run(tool.main, argv, tool='split_scene_dataset.py')
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and 'Traceback' not in err
        return exc.value.code, err.strip()

    # an empty class folder
    (root / 'Empty').mkdir()
    (root / 'Empty' / 'notes.txt').write_text('no image here')
    with pytest.raises(PeraDataError, match=f'^{root / "Empty"}: class folder holds no image'):
        find_class_images(str(root))
    code, err = run([str(root), '--train-ratio', '0.2'])
    assert code == 4 and f'{root / "Empty"}: class folder holds no image' in err
    (root / 'Empty' / 'notes.txt').unlink()
    (root / 'Empty').rmdir()

    # an unreadable image (truncated JPEG, then garbage) names the file
    good = sorted((root / 'Beach').iterdir())[0].read_bytes()
    bad = root / 'Beach' / 'broken.jpg'
    for content in (good[: len(good) // 2], b'not an image'):
        bad.write_bytes(content)
        code, err = run([str(root), '--train-ratio', '0.2', '--out-dir', str(tmp_path / 'm')])
        assert code == 4 and f'{bad}: unreadable image (' in err
    assert not (tmp_path / 'm').exists()  # nothing written before the images were checked
    # --no-check-images skips the decoding
    tool.main(
        [str(root), '--train-ratio', '0.2', '--out-dir', str(tmp_path / 'm'), '--no-check-images']
    )
    bad.unlink()

    # no such folder; no class folder; a bad ratio; a class with one image
    code, err = run([str(tmp_path / 'nope'), '--train-ratio', '0.2'])
    assert code == 5 and f'{tmp_path / "nope"}: no such dataset folder' in err
    (tmp_path / 'flat').mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'flat' / 'a.png')
    code, err = run([str(tmp_path / 'flat'), '--train-ratio', '0.2'])
    assert code == 4 and 'no class folder found' in err
    code, err = run([str(root), '--train-ratio', '1.0'])
    assert code == 3 and 'train_ratio must be in (0, 1), got 1.0' in err
    (root / 'Single').mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'Single' / 'a.png')
    with pytest.raises(PeraDataError, match="class 'Single' has 1 image"):
        split_scene_dataset(str(root), str(tmp_path / 'meta2'), 0.5)
    with pytest.raises(PeraConfigError):
        stratified_split({}, [], True)
    with pytest.raises(PeraFileNotFoundError):
        find_class_images(str(tmp_path / 'nope'))


@pytest.mark.needs_shared
def test_classes_file_of_another_dataset_is_not_overwritten(shared_path, tmp_path):
    split_scene_dataset(str(shared_path('RSSCN7')), str(tmp_path), 0.5, check_images=False)
    with pytest.raises(PeraDataError, match='holds 7 other class names than the 30 folders'):
        split_scene_dataset(
            str(shared_path('AID_150px/AID')), str(tmp_path), 0.2, check_images=False
        )
