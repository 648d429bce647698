"""The synthetic scene generator behind the CPU demo data (pera_mm/utils/scene_generator.py)."""

import numpy as np
import pytest
from PIL import Image

from pera_mm.datasets.unlabeled_image_dataset import UnlabeledImageDataset
from pera_mm.utils.scene_generator import SCENE_TYPES, generate_demo_dataset


def read_all(paths):
    return [p.read_bytes() for p in paths]


def test_deterministic_count_and_size(tmp_path):
    a = generate_demo_dataset(tmp_path / 'a', num_images=10, size=64, seed=3)
    b = generate_demo_dataset(tmp_path / 'b', num_images=10, size=64, seed=3)
    assert len(a) == 10
    assert sorted(p.relative_to(tmp_path / 'a') for p in a) == sorted(
        p.relative_to(tmp_path / 'b') for p in b
    )
    assert read_all(a) == read_all(b)  # identical bytes
    for p in a:
        with Image.open(p) as img:
            assert img.format == 'JPEG'
            assert img.size == (64, 64) and img.mode == 'RGB'
    # Tiles are spread over the scene sub-folders.
    assert {p.parent.name for p in a} == set(SCENE_TYPES)
    # A prefix of a larger set is the same tiles.
    c = generate_demo_dataset(tmp_path / 'c', num_images=12, size=64, seed=3)
    assert read_all(c[:10]) == read_all(a)
    # Another seed gives other tiles; all tiles differ from each other.
    d = generate_demo_dataset(tmp_path / 'd', num_images=10, size=64, seed=4)
    assert all(x != y for x, y in zip(read_all(a), read_all(d)))
    assert len(set(read_all(a))) == 10


def test_idempotent(tmp_path):
    paths = generate_demo_dataset(tmp_path, num_images=5, size=48)
    stamps = [p.stat().st_mtime_ns for p in paths]
    messages = []
    again = generate_demo_dataset(tmp_path, num_images=5, size=48, log=messages.append)
    assert again == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps
    assert 'already holds 5' in messages[0]
    # A missing tile is regenerated.
    paths[0].unlink()
    generate_demo_dataset(tmp_path, num_images=5, size=48)
    assert paths[0].is_file()


def test_scenes_differ_semantically(tmp_path):
    paths = generate_demo_dataset(tmp_path, num_images=40, size=96, seed=1)
    means = {}
    for p in paths:
        arr = np.asarray(Image.open(p), dtype=np.float64)
        means.setdefault(p.parent.name, []).append(arr.reshape(-1, 3).mean(0))
    m = {k: np.mean(v, 0) for k, v in means.items()}
    r, g, b = 0, 1, 2
    # Forest: dark and green; bare land: bright and reddish-brown.
    assert m['forest'].sum() < m['bare_land'].sum() - 60
    assert m['forest'][g] > m['forest'][r] and m['forest'][g] > m['forest'][b]
    assert m['bare_land'][r] > m['bare_land'][g] > m['bare_land'][b]
    # Water scenes hold the bluest tiles.
    blue = {k: v[b] / v.sum() for k, v in m.items()}
    assert max(blue, key=blue.get) == 'water'
    # Residential tiles have the most fine structure (edges).
    edges = {}
    for p in paths:
        grey = np.asarray(Image.open(p).convert('L'), dtype=np.float64)
        edges.setdefault(p.parent.name, []).append(np.abs(np.diff(grey, axis=1)).mean())
    e = {k: np.mean(v) for k, v in edges.items()}
    assert max(e, key=e.get) in ('residential', 'forest')
    assert e['residential'] > e['bare_land'] and e['forest'] > e['water']


def test_loadable_as_dataset(tmp_path):
    generate_demo_dataset(tmp_path, num_images=7, size=64)
    ds = UnlabeledImageDataset(
        data_root=str(tmp_path), pipeline=[dict(type='LoadRGBImageFromFile')]
    )
    assert len(ds) == 7  # demo_meta.json is not an image
    assert ds[0]['img'].shape == (64, 64, 3)


@pytest.mark.parametrize(
    'kwargs, field',
    [(dict(num_images=0), 'num_images'), (dict(size=8), 'size'), (dict(seed=-1), 'seed')],
)
def test_bad_arguments(tmp_path, kwargs, field):
    with pytest.raises(ValueError, match=field):
        generate_demo_dataset(tmp_path, **kwargs)
