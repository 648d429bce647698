import copy
import io
import logging
import os.path as osp
import pickle

import numpy as np
import pytest
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmpretrain.registry import DATASETS
from PIL import Image
from torch.utils.data import DataLoader

from pera_mm.datasets.unlabeled_image_dataset import UnlabeledImageDataset

LOAD = [dict(type='LoadRGBImageFromFile')]


def write_image(path, seed=0, size=(24, 20), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.RandomState(seed).randint(0, 256, size + (3,), np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return arr


def write_truncated_jpeg(path):
    buf = io.BytesIO()
    arr = np.random.RandomState(99).randint(0, 256, (64, 64, 3), np.uint8)
    Image.fromarray(arr).save(buf, 'JPEG')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue()[:1500])


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / 'root'
    write_image(root / 'b' / 'c' / 'z.PNG', 1, fmt='PNG')
    write_image(root / 'a' / '2.jpg', 2)
    write_image(root / 'a' / '10.JPEG', 3, fmt='JPEG')
    write_image(root / 'top.tif', 4)
    write_image(root / 'x.webp', 5)
    (root / 'notes.txt').write_text('not an image')
    (root / 'a' / 'labels.json').write_text('{}')
    return root


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def log_records():
    logger = MMLogger.get_current_instance()
    handler = Records()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def rel(ds, root):
    return [osp.relpath(ds.get_data_info(i)['img_path'], root) for i in range(len(ds))]


@pytest.mark.parametrize('serialize', [True, False])
def test_folder_scan_sorted_recursive(tree, serialize):
    ds = UnlabeledImageDataset(data_root=str(tree), serialize_data=serialize)
    assert rel(ds, tree) == ['a/10.JPEG', 'a/2.jpg', 'b/c/z.PNG', 'top.tif', 'x.webp']
    info = ds.get_data_info(2)
    assert set(info) == {'img_path', 'sample_idx'}
    assert info['sample_idx'] == 2
    assert ds.get_data_info(-1)['img_path'] == str(tree / 'x.webp')


def test_folder_scan_extensions_and_prefix(tree):
    ds = UnlabeledImageDataset(
        data_root=str(tree), data_prefix=dict(img_path='a'), extensions=('JPG',)
    )
    assert [ds.get_data_info(i)['img_path'] for i in range(len(ds))] == [str(tree / 'a' / '2.jpg')]
    # A plain string prefix is accepted too.
    ds = UnlabeledImageDataset(data_root=str(tree), data_prefix='b')
    assert ds.get_data_info(0)['img_path'] == str(tree / 'b' / 'c' / 'z.PNG')


@pytest.mark.parametrize('serialize', [True, False])
def test_ann_file(tree, serialize):
    (tree / 'list.txt').write_text(
        '# tiles for the test\ntop.tif\n\n   a/2.jpg  \n# a/10.JPEG\nb/c/z.PNG\r\n'
    )
    ds = UnlabeledImageDataset(data_root=str(tree), ann_file='list.txt', serialize_data=serialize)
    assert rel(ds, tree) == ['top.tif', 'a/2.jpg', 'b/c/z.PNG']
    # Paths are relative to data_prefix['img_path'] when given.
    (tree / 'a' / 'list.txt').write_text('2.jpg\n10.JPEG\n')
    ds = UnlabeledImageDataset(
        data_root=str(tree),
        ann_file='a/list.txt',
        data_prefix=dict(img_path='a'),
        serialize_data=serialize,
    )
    assert rel(ds, tree) == ['a/2.jpg', 'a/10.JPEG']


def test_ann_file_many_lines_packed(tmp_path):
    root = tmp_path / 'big'
    root.mkdir()
    n = 300_000
    with open(root / 'list.txt', 'w') as f:
        for i in range(n):
            f.write(f'tiles/{i // 1000:03d}/{i:07d}.jpg\n')
    ds = UnlabeledImageDataset(data_root=str(root), ann_file='list.txt')
    assert len(ds) == n
    assert ds.get_data_info(123_456)['img_path'] == str(root / 'tiles' / '123' / '0123456.jpg')
    # One packed buffer: the relative paths and one int64 per entry.
    assert ds.data_bytes.nbytes == n * len('tiles/000/0000000.jpg')
    assert ds.data_address.dtype == np.int64
    sub = ds.get_subset([5, 299_999])
    assert [osp.basename(sub.get_data_info(i)['img_path']) for i in range(2)] == [
        '0000005.jpg',
        '0299999.jpg',
    ]


def test_indices_and_registry(tree):
    ds = DATASETS.build(dict(type='UnlabeledImageDataset', data_root=str(tree), indices=2))
    assert len(ds) == 2
    assert rel(ds, tree) == ['a/10.JPEG', 'a/2.jpg']


def test_missing_root(tmp_path):
    missing = tmp_path / 'nope'
    with pytest.raises(FileNotFoundError) as info:
        UnlabeledImageDataset(data_root=str(missing))
    assert 'data_root' in str(info.value) and str(missing) in str(info.value)


def test_missing_prefix_and_ann_file(tree):
    with pytest.raises(FileNotFoundError, match=r'img_path.*nothing'):
        UnlabeledImageDataset(data_root=str(tree), data_prefix=dict(img_path='nothing'))
    with pytest.raises(FileNotFoundError, match=r'ann_file.*missing\.txt'):
        UnlabeledImageDataset(data_root=str(tree), ann_file='missing.txt')


def test_empty_root(tmp_path):
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    (tmp_path / 'empty' / 'readme.md').write_text('x')
    with pytest.raises(ValueError) as info:
        UnlabeledImageDataset(data_root=str(tmp_path / 'empty'))
    message = str(info.value)
    assert 'data_root' in message and str(tmp_path / 'empty') in message
    assert '.jpg' in message and '.tif' in message
    assert '\n' not in message


def test_empty_ann_file(tree):
    (tree / 'empty.txt').write_text('# nothing\n\n')
    with pytest.raises(ValueError, match='ann_file'):
        UnlabeledImageDataset(data_root=str(tree), ann_file='empty.txt')


def test_bad_arguments(tree):
    with pytest.raises(ValueError, match='extensions'):
        UnlabeledImageDataset(data_root=str(tree), extensions='.jpg')
    with pytest.raises(ValueError, match='data_prefix'):
        UnlabeledImageDataset(data_root=str(tree), data_prefix=dict(img='x'))


def test_lazy_init(tree):
    ds = UnlabeledImageDataset(data_root=str(tree), lazy_init=True)
    assert not ds._fully_initialized
    assert len(ds) == 5


@pytest.fixture
def bad_tree(tmp_path):
    root = tmp_path / 'tiles'
    good = {}
    for i in range(4):
        good[f'ok_{i}.png'] = write_image(root / f'ok_{i}.png', i, fmt='PNG')
    write_truncated_jpeg(root / 'bad_1.jpg')
    (root / 'bad_2.png').write_bytes(b'garbage')
    return root, good


def test_unreadable_image_skipped_counted_logged(bad_tree, log_records):
    root, good = bad_tree
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD)
    names = [osp.basename(ds.get_data_info(i)['img_path']) for i in range(len(ds))]
    assert names[:2] == ['bad_1.jpg', 'bad_2.png']
    ds._rand_another = lambda: 2  # refetch deterministically (ok_0.png)

    out = ds[0]
    assert np.array_equal(out['img'], good['ok_0.png'])
    assert ds.num_skipped == 1
    assert any('bad_1.jpg' in m and 'unreadable' in m for m in log_records)
    out = ds[1]
    assert np.array_equal(out['img'], good['ok_0.png'])
    out = ds[0]
    assert ds.num_skipped == 3
    # Each bad path is logged once.
    assert sum('bad_1.jpg' in m for m in log_records) == 1
    assert sum('bad_2.png' in m for m in log_records) == 1
    assert ds.pop_epoch_skipped() == 3
    assert ds.pop_epoch_skipped() == 0
    assert ds.num_skipped == 3
    # Good images are unaffected.
    assert np.array_equal(ds[5]['img'], good['ok_3.png'])


def test_other_errors_propagate(bad_tree):
    root, _ = bad_tree

    def boom(results):
        raise RuntimeError('pipeline bug')

    ds = UnlabeledImageDataset(data_root=str(root), pipeline=[boom])
    with pytest.raises(RuntimeError, match='pipeline bug'):
        ds[3]
    assert ds.num_skipped == 0


def test_test_mode_does_not_skip(bad_tree):
    root, _ = bad_tree
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD, test_mode=True)
    from pera_mm.datasets.transforms.loading import UnreadableImageError

    with pytest.raises(UnreadableImageError):
        ds[0]


def _epoch(ds, **loader_kwargs):
    loader = DataLoader(ds, batch_size=2, collate_fn=pseudo_collate, **loader_kwargs)
    shapes = []
    for batch in loader:
        shapes += [img.shape for img in batch['img']]
    return shapes


def test_skips_counted_across_fork_workers(bad_tree):
    root, _ = bad_tree
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD)
    ds._rand_another = lambda: 3  # inherited by forked workers
    shapes = _epoch(ds, num_workers=2, multiprocessing_context='fork')
    assert shapes == [(24, 20, 3)] * 6
    assert ds.num_skipped == 2
    assert ds.pop_epoch_skipped() == 2
    shapes = _epoch(ds, num_workers=2, multiprocessing_context='fork', persistent_workers=True)
    assert ds.num_skipped == 4
    assert ds.pop_epoch_skipped() == 2


def test_skips_counted_across_spawn_workers(bad_tree):
    root, _ = bad_tree
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD, indices=[0, 1, 2])
    shapes = _epoch(ds, num_workers=1, multiprocessing_context='spawn')
    assert shapes == [(24, 20, 3)] * 3
    # Refetching is random, so a bad tile may be hit more than once.
    assert ds.num_skipped >= 2
    assert ds.pop_epoch_skipped() == ds.num_skipped


def test_copies_get_independent_counters(bad_tree):
    root, _ = bad_tree
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD)
    assert ds.prepare_data(0) is None  # skipped, no refetch here
    for other in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds)), ds.get_subset([0, 2])):
        assert other.num_skipped == 1
        other.skip_counter.increment()
        assert ds.num_skipped == 1
