# Copyright (c) pera-mm contributors. All rights reserved.
"""The three configs of the CPU-budget study (PerA, the DINOv2-style baseline, MMPretrain MAE).

What the study relies on is checked on the shipped configs: the same ViT-Tiny/16
encoder, the same unlabeled corpus, the fixed evaluation protocol with
``save_best`` on AID, and iteration counts that give every method the same wall
time at the step times of ``benchmarks/results/study_step_time.json``. Each config
then trains 3 iterations at test size on real tiles through the Runner and
evaluates while it trains on two small real sets, logging the per-set keys.
"""

import json

import pytest
from mmengine.config import Config

from pera_mm.testing import REPO_ROOT, TINY_ARCH, shrink_model_config
from pera_mm.testing.resume_run import run_training, unique_experiment_name
from pera_mm.testing.tool_runs import read_scalars

CONFIGS = {
    'pera': 'configs/pera/pera_vit-tiny-p16_1xb32-5e_aid-unlabeled-96px_cpu-budget.py',
    'dinov2_baseline': (
        'configs/pera/ablations/'
        'dinov2-baseline_vit-tiny-p16_1xb32-184iter_aid-unlabeled-96px_cpu-budget.py'
    ),
    'mae': 'configs/mae/mae_vit-tiny-p16_1xb32-803iter_aid-unlabeled-112px_cpu-budget.py',
}
STEP_TIME = REPO_ROOT / 'benchmarks/results/study_step_time.json'
SETS = {
    'aid': ('AID_150px/AID', ['Airport', 'Beach', 'Desert', 'Forest']),
    'rsscn7': ('RSSCN7', ['aGrass', 'bField', 'dRiverLake', 'eForest']),
}
KEYS = [f'{s}/{m}' for s in SETS for m in ('knn_top1_k20', 'knn_top1_k1', 'linear_top1')]


def load(name):
    return Config.fromfile(REPO_ROOT / CONFIGS[name])


def train_iters(cfg):
    loop = cfg.train_cfg
    if loop.type == 'EpochBasedTrainLoop':  # 2,100 tiles in batches of 32: 66 per epoch
        return loop.max_epochs * -(-2100 // cfg.train_dataloader.batch_size)
    return loop.max_iters


def encoder_size(cfg):
    """(width, depth, heads) of the config's encoder, from its class's arch table."""
    from mmpretrain.models import VisionTransformer

    from pera_mm.models.backbones.pera_vit import PerAViT

    arch = cfg.model.backbone.arch
    zoo = PerAViT.arch_zoo if cfg.model.backbone.type == 'PerAViT' else VisionTransformer.arch_zoo
    a = zoo[arch]
    return a['embed_dims'], a['num_layers'], a['num_heads']


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_study_config_states_the_shared_setting(name):
    cfg = load(name)
    assert encoder_size(cfg) == (192, 12, 3)
    assert cfg.model.backbone.patch_size == 16
    assert cfg.train_dataloader.batch_size == 32
    assert cfg.train_dataloader.dataset.data_root.split('/')[-2:] == ['data', 'AID_unlabeled']
    assert cfg.train_dataloader.num_workers <= 1
    assert cfg.val_cfg.type == 'FeatureKNNValLoop'
    assert set(cfg.val_cfg.sets) == {'aid', 'rsscn7'}
    assert cfg.val_evaluator == dict(
        type='BankQueryKNNMetric', ks=(20, 1), temperature=0.07, ridge_lambda=1.0
    )
    assert cfg.default_hooks.checkpoint.save_best == 'aid/knn_top1_k20'
    assert cfg.default_hooks.checkpoint.rule == 'greater'


def test_mae_config_is_mmpretrain_mae_at_the_stated_size():
    cfg = load('mae')
    assert (cfg.model.type, cfg.model.backbone.type) == ('MAE', 'MAEViT')
    assert cfg.model.backbone.mask_ratio == 0.75 and cfg.model.backbone.out_type == 'raw'
    neck = cfg.model.neck
    assert (neck.type, neck.decoder_embed_dim, neck.decoder_depth) == ('MAEPretrainDecoder', 128, 4)
    assert neck.num_patches == (cfg.model.backbone.img_size // 16) ** 2 == 49
    assert cfg.model.head.norm_pix is True


def test_budgets_are_equal_wall_time_from_the_step_time_measurement():
    measured = json.loads(STEP_TIME.read_text())
    assert measured['order'].split(': ')[1].split() == list(CONFIGS) * measured['rounds']
    budget_s = measured['budget_minutes'] * 60
    for name, config in CONFIGS.items():
        entry = measured['summary'][name]
        assert entry['config'] == config
        steps = [s for run in measured['runs'] if run['method'] == name for s in run['step_s']]
        assert len(steps) == measured['rounds'] * measured['iters']
        assert entry['median_step_s'] == pytest.approx(sorted(steps)[len(steps) // 2], rel=0.2)
        iters = train_iters(load(name))
        assert entry['iters_for_budget'] == iters, name
        # rounding to whole iterations misses the shared budget by at most half a step
        assert abs(iters * entry['median_step_s'] - budget_s) <= entry['median_step_s'] / 2, name


def link_sets(shared_path, root):
    """Small evaluation sets: real class folders linked (not copied) into ``root``."""
    roots = {}
    for name, (relative, classes) in SETS.items():
        roots[name] = root / name
        roots[name].mkdir(parents=True)
        for c in classes:
            (roots[name] / c).symlink_to(shared_path(f'{relative}/{c}'), target_is_directory=True)
    return roots


def at_test_size(cfg, name):
    """The config with a small encoder, 64 px inputs and 3 iterations that end in an evaluation."""
    if name == 'mae':
        cfg.model.backbone.update(arch=TINY_ARCH, img_size=64)
        cfg.model.neck.update(
            num_patches=16, embed_dim=64, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2
        )
        for t in cfg.train_dataloader.dataset.pipeline:
            if t['type'] == 'RandomResizedCrop':
                t['scale'] = 64
    else:
        cfg.model = shrink_model_config(
            cfg.model, TINY_ARCH, 64, 64, hidden_channels=32, bottleneck_channels=16
        )
        for t in cfg.train_dataloader.dataset.pipeline:
            if t['type'] == 'PerAMultiCropViews':
                t.update(global_crop_size=64, local_crop_size=32, num_local_crops=2)
    for sched in cfg.param_scheduler:
        sched.update(end=3, **({'warmup': 1} if 'warmup' in sched else {}))
    if cfg.train_cfg.type == 'EpochBasedTrainLoop':
        cfg.train_cfg.update(max_epochs=3, val_interval=3)  # 1 iteration per epoch below
    else:
        cfg.train_cfg.update(max_iters=3, val_interval=3)
    if 'teacher_temp' in cfg:
        cfg.teacher_temp = dict(start_temp=0.04, end_temp=0.05, warmup_iters=1)
    cfg.default_hooks.checkpoint.update(interval=3)
    cfg.default_hooks.logger.interval = 1
    return cfg


@pytest.mark.needs_shared
@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_study_config_trains_three_iterations_and_evaluates(name, shared_path, tmp_path):
    roots = link_sets(shared_path, tmp_path / 'eval_sets')
    work = tmp_path / 'work'
    work.mkdir()
    cfg = at_test_size(load(name), name)
    cfg.work_dir = str(work)
    cfg.experiment_name = unique_experiment_name(work)
    loader = cfg.train_dataloader
    loader.update(batch_size=4, num_workers=0, persistent_workers=False)
    loader.dataset.update(data_root=str(shared_path('AID_unlabeled')), indices=4)
    cfg.val_dataloader.update(batch_size=20, num_workers=0)
    cfg.val_cfg.sets = {s: dict(data_root=str(root)) for s, root in roots.items()}
    run_training(cfg)
    rows = read_scalars(work)
    losses = [row['loss'] for row in rows if 'loss' in row]
    assert len(losses) == 3 and all(loss == loss and abs(loss) < 1e4 for loss in losses)
    (evaluated,) = [row for row in rows if 'aid/knn_top1_k20' in row]
    assert evaluated['step'] == 3
    assert set(KEYS) <= set(evaluated)
    assert all(0.0 <= evaluated[k] <= 100.0 for k in KEYS)
    assert len(list(work.glob('best_aid_knn_top1_k20_*_3.pth'))) == 1
