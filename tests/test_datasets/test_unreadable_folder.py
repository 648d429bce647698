# Copyright (c) pera-mm contributors. All rights reserved.
"""A folder in which no file can be read ends with one line saying so."""

import re

import numpy as np
import pytest
from mmengine.dataset import pseudo_collate
from PIL import Image
from torch.utils.data import DataLoader

from pera_mm.datasets import UnlabeledImageDataset
from pera_mm.utils.cli import PeraCliErrors
from pera_mm.utils.errors import PeraDataError

LOAD = [dict(type='LoadRGBImageFromFile')]


def corrupt_folder(root, n):
    """``n`` files that are not images: empty, garbage and truncated PNGs."""
    root.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'seed.png')
    png = (root / 'seed.png').read_bytes()
    (root / 'seed.png').unlink()
    for i in range(n):
        content = (b'', b'not an image at all', png[: len(png) // 2])[i % 3]
        (root / f'tile_{i:02d}.png').write_bytes(content)
    return root


def test_all_unreadable_is_one_line_with_count_and_reasons(tmp_path):
    root = corrupt_folder(tmp_path / 'tiles', 6)
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD)
    with pytest.raises(PeraDataError) as info:
        ds[0]
    msg = str(info.value)
    assert '\n' not in msg and 'Cannot find valid image' not in msg
    assert 'all 6 files tried, all unreadable' in msg
    assert str(root) in msg
    reasons = re.search(r'first reasons: (.*)\)$', msg).group(1).split('; ')
    assert len(reasons) == 3  # the first few, not all six
    assert all(re.match(r'tile_0\d\.png: \S', r) for r in reasons)
    assert any('file is empty' in r for r in reasons)
    # it stops once every file was tried, not after 1000 random refetches
    assert 6 <= ds.num_skipped < 200


def test_refetch_limit_reports_how_many_of_all(tmp_path):
    root = corrupt_folder(tmp_path / 'tiles', 30)
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD, max_refetch=4)
    with pytest.raises(PeraDataError) as info:
        ds[0]
    tried = int(re.search(r'(\d+) of 30 files tried', str(info.value)).group(1))
    assert 1 <= tried <= 5 and ds.num_skipped == 5


def test_worker_traceback_is_stripped_from_the_report(tmp_path):
    root = corrupt_folder(tmp_path / 'tiles', 3)
    ds = UnlabeledImageDataset(data_root=str(root), pipeline=LOAD)
    loader = DataLoader(ds, batch_size=1, num_workers=1, collate_fn=pseudo_collate)
    with pytest.raises(PeraDataError) as info:
        next(iter(loader))
    raw = str(info.value)
    assert 'DataLoader worker process' in raw and 'Traceback' in raw  # how torch re-raises
    line = PeraCliErrors.message(info.value)
    assert line.startswith('UnlabeledImageDataset: no readable image in folder')
    assert 'all 3 files tried' in line
    assert 'Traceback' not in line and 'DataLoader worker' not in line
    assert re.search(r'\(first reasons: tile_0\d\.png: [^;]+(; tile_0\d\.png: [^;]+){2}\)$', line)
    assert PeraCliErrors.exit_code(info.value) == PeraCliErrors.EXIT_CODES['data']
