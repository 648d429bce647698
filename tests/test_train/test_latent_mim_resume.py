"""A killed and resumed LatentMIM run equals an uninterrupted one: the target encoder
(EMA inside the forward), the schedules and the draws continue exactly."""

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.resume_run import SimulatedKill, run_training, unique_experiment_name
from pera_mm.utils import generate_demo_dataset

SMOKE = REPO_ROOT / 'configs/latent_mim/latent_mim_vit-tiny-p16_1xb4-1e_demo-80px_cpu-smoke.py'


@HOOKS.register_module(force=True)
class LatentMIMIterCounterHook(Hook):
    """Counts the iterations this run trained (a resumed run trains only the rest)."""

    runs = []

    def before_train(self, runner):
        self.runs.append([])

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.runs[-1].append(runner.iter)


@pytest.fixture(scope='module')
def tiles(tmp_path_factory):
    root = tmp_path_factory.mktemp('lmim_resume_tiles')
    generate_demo_dataset(root, num_images=8, size=96, seed=0)
    return root


def smoke_cfg(data_root, work_dir, kill_after=None):
    """The smoke config on 8 tiles, batch 4, 2 epochs = 4 iterations."""
    cfg = Config.fromfile(str(SMOKE))
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.dataset.data_root = str(data_root)
    cfg.train_cfg.max_epochs = 2
    cfg.param_scheduler[0].end = 2
    cfg.custom_hooks = [*cfg.custom_hooks, dict(type='LatentMIMIterCounterHook')]
    if kill_after:
        cfg.custom_hooks.append(dict(type='KillAfterEpochHook', epoch=kill_after))
    cfg.experiment_name = unique_experiment_name(work_dir)
    return cfg


def test_killed_then_resumed_run_matches_uninterrupted(tiles, tmp_path):
    full = run_training(smoke_cfg(tiles, tmp_path / 'full'))
    assert full.iter == 4
    with pytest.raises(SimulatedKill):
        run_training(smoke_cfg(tiles, tmp_path / 'cut', kill_after=1))
    resumed = run_training(smoke_cfg(tiles, tmp_path / 'cut'), resume=True)
    assert resumed.iter == 4
    # full run: iterations 0-3; killed run: 0-1; the resumed run trains only 2-3
    assert LatentMIMIterCounterHook.runs[-3:] == [[0, 1, 2, 3], [0, 1], [2, 3]]
    expected, got = full.model.state_dict(), resumed.model.state_dict()
    assert set(expected) == set(got)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=0, atol=1e-6, msg=k)
    # the target moved away from the online encoder (EMA of changing weights)
    assert not torch.equal(expected['target.blocks.0.attn.qkv.weight'],
                           expected['backbone.blocks.0.attn.qkv.weight'])  # fmt: skip
    assert resumed.model.momentum == full.model.momentum > 0.99
