"""A killed and resumed I-JEPA run ends where an uninterrupted one does (masks included)."""

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.resume_run import SimulatedKill, run_training, unique_experiment_name
from pera_mm.utils import generate_demo_dataset

SMOKE = REPO_ROOT / 'configs/ijepa/ijepa_vit-tiny-p14_1xb4-3iter_demo-56px_cpu-smoke.py'


@HOOKS.register_module(force=True)
class RecordIJEPAMasksHook(Hook):
    """Keeps the target blocks the model drew at every iteration."""

    masks = {}

    def before_train(self, runner):
        sampler = runner.model.mask_sampler
        if getattr(sampler, '_recording', False):
            return
        original = sampler.forward

        def forward(batch_size):
            out = original(batch_size)
            type(self).masks[(runner.work_dir, runner.iter)] = [t.clone() for t in out[1]]
            return out

        sampler.forward, sampler._recording = forward, True


def smoke_cfg(data_root, work_dir, extra_hooks=()):
    """8 tiles, batch 4: 2 iterations per epoch, 4 epochs; the smoke schedules over 8 iterations."""
    cfg = Config.fromfile(SMOKE)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = str(data_root)
    cfg.train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=4)
    for sched in cfg.param_scheduler:
        sched.end = 8
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.log_processor = dict(window_size=1, by_epoch=True)
    cfg.custom_hooks = list(cfg.custom_hooks) + [dict(type='RecordIJEPAMasksHook')]
    cfg.custom_hooks += list(extra_hooks)
    cfg.experiment_name = unique_experiment_name(work_dir)
    return cfg


def test_killed_then_resumed_run_matches_uninterrupted(tmp_path):
    data = tmp_path / 'tiles'
    generate_demo_dataset(data, num_images=8, size=72, seed=0)
    full = run_training(smoke_cfg(data, tmp_path / 'full'))
    assert full.iter == 8 and int(full.model.mask_sampler.calls) == 8

    part = tmp_path / 'part'
    part.mkdir()
    with pytest.raises(SimulatedKill):
        run_training(smoke_cfg(data, part, [dict(type='KillAfterEpochHook', epoch=2)]))
    ckpt = torch.load(part / 'epoch_2.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 4 and int(ckpt['state_dict']['mask_sampler.calls']) == 4
    resumed = run_training(smoke_cfg(data, part), resume=True)
    assert resumed.iter == 8 and int(resumed.model.mask_sampler.calls) == 8

    masks = RecordIJEPAMasksHook.masks
    for it in range(4, 8):  # the resumed run drew the uninterrupted run's masks
        expected, got = masks[(full.work_dir, it)], masks[(resumed.work_dir, it)]
        assert all(torch.equal(a, b) for a, b in zip(expected, got)), it
    want, have = full.model.state_dict(), resumed.model.state_dict()
    for k in want:
        if k.startswith(('backbone.', 'neck.', 'target_encoder.')):
            torch.testing.assert_close(have[k], want[k], rtol=0, atol=1e-6, msg=k)
    assert not torch.equal(
        want['target_encoder.norm.weight'], ckpt['state_dict']['target_encoder.norm.weight']
    )
