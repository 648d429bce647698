"""End-to-end PerA training through MMEngine's Runner on generated demo tiles."""

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT
from pera_mm.testing.resume_run import SimulatedKill, run_training, unique_experiment_name
from pera_mm.utils import generate_demo_dataset

DEMO = REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py'


@pytest.fixture(scope='module')
def demo_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('pera_demo')
    generate_demo_dataset(root, num_images=40, size=96, seed=0)
    return root


def demo_cfg(data_root, work_dir, extra_hooks=()):
    """The demo config on 40 tiles, batch 8: 5 iterations/epoch, 4 epochs = 20 iterations."""
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(work_dir)
    loader = cfg.train_dataloader
    loader.update(batch_size=8, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = str(data_root)
    cfg.train_cfg.max_epochs = 4
    lr_sched, wd_sched = cfg.param_scheduler
    lr_sched.update(warmup=1, end=4)
    wd_sched.update(end=4)
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.custom_hooks = list(cfg.custom_hooks) + list(extra_hooks)
    cfg.experiment_name = unique_experiment_name(work_dir)
    return cfg


def teacher_state(runner):
    return {k: v.clone() for k, v in runner.model.teacher.state_dict().items()}


@pytest.fixture(scope='module')
def uninterrupted(demo_root, tmp_path_factory):
    work = tmp_path_factory.mktemp('uninterrupted')
    cfg = demo_cfg(demo_root, work)
    initial = {}

    @HOOKS.register_module(force=True)
    class RecordInitialModel(Hook):
        def before_train(self, runner):
            initial.update({k: v.clone() for k, v in runner.model.state_dict().items()})

    cfg.custom_hooks.append(dict(type='RecordInitialModel'))
    runner = run_training(cfg)
    hub = runner.message_hub
    return dict(runner=runner, initial=initial, losses=list(hub.get_scalar('train/loss').data[0]))


def fixed_batch_loss(model, data):
    """Total loss on one batch with the model in eval mode (no drop path)."""
    model.eval()
    with torch.no_grad():
        losses = model(**data, mode='loss')
    model.cls_loss._pending_sum, model.cls_loss._pending_count = None, 0
    return sum(v for k, v in losses.items() if k.startswith('loss')).item()


def test_twenty_iterations_lower_the_loss_and_move_the_teacher(uninterrupted):
    runner, model = uninterrupted['runner'], uninterrupted['runner'].model
    assert runner.iter == 20 and len(uninterrupted['losses']) == 20
    # Same batch, same teacher, centre and temperature: only the student differs.
    torch.manual_seed(0)
    data = model.data_preprocessor(next(iter(runner.train_dataloader)), training=True)
    model.cls_loss.teacher_temp = 0.04
    trained = fixed_batch_loss(model, data)
    final = model.state_dict()
    student_keys = [k for k in final if not k.startswith(('teacher.', 'cls_loss.'))]
    model.load_state_dict({**final, **{k: uninterrupted['initial'][k] for k in student_keys}})
    initial = fixed_batch_loss(model, data)
    model.load_state_dict(final)
    print(f'fixed-batch loss: initial student {initial:.4f}, trained {trained:.4f}')
    assert trained < initial - 0.3, (trained, initial)

    final_teacher = teacher_state(runner)
    moved = [
        k
        for k in final_teacher
        if not torch.equal(final_teacher[k], uninterrupted['initial']['teacher.' + k])
    ]
    assert len(moved) == len(final_teacher)
    student = runner.model.backbone.state_dict()
    assert not torch.equal(final_teacher['backbone.pos_embed'], student['pos_embed'])
    assert runner.model.cls_loss.center.abs().sum() > 0


def test_killed_then_resumed_run_matches_uninterrupted(uninterrupted, demo_root, tmp_path):
    cfg = demo_cfg(demo_root, tmp_path, extra_hooks=[dict(type='KillAfterEpochHook', epoch=2)])
    with pytest.raises(SimulatedKill):
        run_training(cfg)
    assert (tmp_path / 'epoch_2.pth').exists()
    ckpt = torch.load(tmp_path / 'epoch_2.pth', weights_only=True)  # our compat allow-list
    assert ckpt['meta']['iter'] == 10

    resumed = run_training(demo_cfg(demo_root, tmp_path), resume=True)
    assert resumed.iter == 20
    expected = teacher_state(uninterrupted['runner'])
    got = teacher_state(resumed)
    for k in expected:
        torch.testing.assert_close(got[k], expected[k], rtol=0, atol=1e-6, msg=k)
    torch.testing.assert_close(
        resumed.model.cls_loss.center,
        uninterrupted['runner'].model.cls_loss.center,
        rtol=0,
        atol=1e-6,
    )
