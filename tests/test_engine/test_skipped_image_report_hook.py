import io
import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.dataset import ConcatDataset, RepeatDataset
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS
from PIL import Image
from torch.utils.data import ConcatDataset as TorchConcatDataset

from pera_mm.datasets.unlabeled_image_dataset import UnlabeledImageDataset
from pera_mm.engine.hooks.skipped_image_report_hook import (
    SkippedImageReportHook,
    find_skip_counting_datasets,
)

LOAD = [dict(type='LoadRGBImageFromFile')]


@pytest.fixture
def bad_tree(tmp_path):
    """4 readable 24x20 PNGs and 2 unreadable files."""
    root = tmp_path / 'tiles'
    root.mkdir()
    for i in range(4):
        arr = np.random.RandomState(i).randint(0, 256, (24, 20, 3), np.uint8)
        Image.fromarray(arr).save(root / f'ok_{i}.png')
    buf = io.BytesIO()
    Image.fromarray(np.random.RandomState(9).randint(0, 256, (64, 64, 3), np.uint8)).save(
        buf, 'JPEG'
    )
    (root / 'bad_1.jpg').write_bytes(buf.getvalue()[:1500])
    (root / 'bad_2.png').write_bytes(b'garbage')
    return root


class FakeRunner:
    def __init__(self, dataset):
        self.train_dataloader = SimpleNamespace(dataset=dataset)
        self.messages = []
        self.logger = SimpleNamespace(info=self.messages.append)


def test_finds_datasets_inside_wrappers(bad_tree):
    a = UnlabeledImageDataset(data_root=str(bad_tree))
    b = UnlabeledImageDataset(data_root=str(bad_tree))
    wrapped = TorchConcatDataset([RepeatDataset(a, times=2), ConcatDataset([b, a])])
    assert find_skip_counting_datasets(wrapped) == [a, b]
    assert find_skip_counting_datasets(a) == [a]
    assert find_skip_counting_datasets(SimpleNamespace()) == []


def test_report_hook(bad_tree):
    a = UnlabeledImageDataset(data_root=str(bad_tree), pipeline=LOAD)
    b = UnlabeledImageDataset(data_root=str(bad_tree), pipeline=LOAD)
    # Index 0 and 1 are the bad files; prepare_data skips without refetch.
    assert a.prepare_data(0) is None and a.prepare_data(1) is None
    assert b.prepare_data(0) is None
    wrapped = TorchConcatDataset([RepeatDataset(a, times=2), ConcatDataset([b])])
    hook = HOOKS.build(dict(type='SkippedImageReportHook'))
    assert isinstance(hook, SkippedImageReportHook)
    runner = FakeRunner(wrapped)
    hook.after_train_epoch(runner)
    assert runner.messages == ['skipped 3 unreadable images this epoch (3 in total)']
    assert b.prepare_data(1) is None
    hook.after_train_epoch(runner)
    hook.after_train_epoch(runner)
    assert runner.messages[1:] == [
        'skipped 1 unreadable images this epoch (4 in total)',
        'skipped 0 unreadable images this epoch (4 in total)',
    ]
    # Datasets that do not count skips: nothing is logged.
    runner = FakeRunner(SimpleNamespace())
    hook.after_train_epoch(runner)
    assert runner.messages == []


class ToyModel(BaseModel):
    """Takes the packed image batch and returns a dummy loss."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, inputs, data_samples=None, mode='loss'):
        assert inputs.shape[1:] == (3, 24, 20)
        return dict(loss=(self.w * inputs.float().mean()).sum())


def test_report_hook_in_a_training_run(bad_tree, tmp_path):
    runner = Runner(
        model=ToyModel(),
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='UnlabeledImageDataset',
                data_root=str(bad_tree),
                pipeline=LOAD + [dict(type='PackInputs')],
            ),
        ),
        train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        custom_hooks=[dict(type='SkippedImageReportHook')],
        default_hooks=dict(checkpoint=None),
        default_scope='mmpretrain',
    )
    runner.train()
    log = ''.join(p.read_text() for p in (tmp_path / 'work').rglob('*.log'))
    reports = re.findall(r'skipped (\d+) unreadable images this epoch \((\d+) in total\)', log)
    assert len(reports) == 2
    (n1, t1), (n2, t2) = [(int(n), int(t)) for n, t in reports]
    # Both bad files are met every epoch (refetches may hit them again).
    assert n1 >= 2 and n2 >= 2
    assert t1 == n1 and t2 == n1 + n2
    assert 'skipping unreadable image' in log and 'bad_1.jpg' in log
