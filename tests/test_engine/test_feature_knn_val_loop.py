# Copyright (c) pera-mm contributors. All rights reserved.
"""Evaluation during pretraining: a 2-iteration PerA run on real images through the Runner.

Training: 4 tiles of AID_unlabeled, batch 4, 2 epochs of 1 iteration, the shipped
CPU-budget config at test size. Evaluation after each epoch on two small real sets
(4 AID_150px classes and 4 RSSCN7 classes, their class folders linked into a
temporary tree): the per-set metrics reach scalars.json, save_best keeps the best
epoch, the logged numbers are the protocol's on the trained teacher, and the
stand-alone knn_probe.py tool reproduces them from the checkpoint.
"""

import importlib.util
import json

import pytest
import torch
from mmengine.config import Config

from pera_mm.evaluation import BankQueryFolderDataset, ridge_probe_top1, weighted_knn_top1
from pera_mm.testing import REPO_ROOT, TINY_ARCH, shrink_model_config
from pera_mm.testing.resume_run import run_training, unique_experiment_name
from pera_mm.testing.tool_runs import read_scalars
from pera_mm.utils.checkpoint_convert import extract_backbone, save_weights_file, unwrap_state_dict

CONFIG = REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-5e_aid-unlabeled-96px_cpu-budget.py'
PROBE = REPO_ROOT / 'tools/analysis_tools/knn_probe.py'
SETS = {
    'aid': ('AID_150px/AID', ['Airport', 'Beach', 'Desert', 'Forest']),
    'rsscn7': ('RSSCN7', ['aGrass', 'bField', 'dRiverLake', 'eForest']),
}
KEYS = [f'{s}/{m}' for s in SETS for m in ('knn_top1_k20', 'knn_top1_k1', 'linear_top1')]

pytestmark = pytest.mark.needs_shared


def link_sets(shared_path, root):
    """Small evaluation sets: real class folders linked (not copied) into ``root``."""
    roots = {}
    for name, (relative, classes) in SETS.items():
        roots[name] = root / name
        roots[name].mkdir(parents=True)
        for c in classes:
            (roots[name] / c).symlink_to(shared_path(f'{relative}/{c}'), target_is_directory=True)
    return roots


@pytest.fixture(scope='module')
def run(shared_path, tmp_path_factory):
    roots = link_sets(shared_path, tmp_path_factory.mktemp('eval_sets'))
    work = tmp_path_factory.mktemp('knn_val')
    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = str(work)
    cfg.experiment_name = unique_experiment_name(work)
    cfg.model = shrink_model_config(
        cfg.model, TINY_ARCH, 64, 64, hidden_channels=32, bottleneck_channels=16
    )
    loader = cfg.train_dataloader
    loader.update(batch_size=4, num_workers=0, persistent_workers=False)
    loader.dataset.update(data_root=str(shared_path('AID_unlabeled')), indices=4)
    for t in loader.dataset.pipeline:
        if t['type'] == 'PerAMultiCropViews':
            t.update(global_crop_size=64, local_crop_size=32, num_local_crops=2)
    cfg.train_cfg.max_epochs = 2
    lr, wd = cfg.param_scheduler
    lr.update(warmup=1, end=2)
    wd.update(end=2)
    cfg.teacher_temp.warmup_epochs = 1
    cfg.val_dataloader.update(batch_size=20, num_workers=0)
    cfg.val_cfg.sets = {name: dict(data_root=str(root)) for name, root in roots.items()}
    runner = run_training(cfg)
    config_path = work / 'config.py'
    runner.cfg.dump(str(config_path))
    return dict(runner=runner, work=work, roots=roots, config=config_path)


def val_rows(work):
    return [row for row in read_scalars(work) if 'aid/knn_top1_k20' in row]


def test_per_set_metrics_are_logged_every_epoch_and_save_best_keeps_one(run):
    rows = val_rows(run['work'])
    assert [row['step'] for row in rows] == [1, 2]  # epochs
    for row in rows:
        assert set(KEYS) <= set(row)
        assert all(0.0 <= row[k] <= 100.0 for k in KEYS)
    scores = [row['aid/knn_top1_k20'] for row in rows]
    best_epoch = scores.index(max(scores)) + 1  # 'greater': a later tie does not replace it
    (best,) = run['work'].glob('best_aid_knn_top1_k20_epoch_*.pth')
    assert best.name == f'best_aid_knn_top1_k20_epoch_{best_epoch}.pth'
    hub = run['runner'].message_hub
    assert hub.get_info('best_score') == max(scores)
    assert hub.get_scalar('val/rsscn7/linear_top1').current() == rows[-1]['rsscn7/linear_top1']
    assert run['runner'].model.training  # back in train mode after the evaluation


def protocol_by_hand(model, root):
    """The teacher's dense-path cls features of the 112 px set, scored by the protocol functions."""
    cfg = Config.fromfile(CONFIG)
    dataset = BankQueryFolderDataset(
        data_root=str(root), pipeline=cfg.val_dataloader.dataset.pipeline
    )
    pre = model.data_preprocessor
    feats, labels, bank = [], [], []
    with torch.no_grad():
        for i in range(len(dataset)):
            sample = dataset[i]
            x = (sample['inputs'][None].float() - pre.mean) / pre.std
            assert x.shape == (1, 3, 112, 112)
            feats.append(model.teacher.backbone(x)[-1][0])
            labels.append(int(sample['data_samples'].gt_label))
            bank.append(sample['data_samples'].split == 'bank')
    feats, labels, bank = torch.stack(feats), torch.tensor(labels), torch.tensor(bank)
    assert int(bank.sum()) == int((~bank).sum()) == 20
    args = (feats[bank], labels[bank], feats[~bank], labels[~bank])
    return {
        'knn_top1_k20': weighted_knn_top1(*args, k=20),
        'knn_top1_k1': weighted_knn_top1(*args, k=1),
        'linear_top1': ridge_probe_top1(*args, ridge_lambda=1.0),
    }


def test_logged_numbers_are_the_protocol_on_the_trained_teacher(run):
    model, last = run['runner'].model, val_rows(run['work'])[-1]
    model.eval()
    for name, root in run['roots'].items():
        expected = protocol_by_hand(model, root)
        for metric, value in expected.items():
            assert last[f'{name}/{metric}'] == pytest.approx(value, abs=1e-6), (name, metric)
    model.train()


def load_probe():
    spec = importlib.util.spec_from_file_location('knn_probe_tool', PROBE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_probe_tool_reproduces_the_logged_numbers_with_both_floors(run, tmp_path):
    probe, last = load_probe(), val_rows(run['work'])[-1]
    ckpt = run['work'] / 'epoch_2.pth'
    report = probe.main_([str(run['config']), str(ckpt), '--json', str(tmp_path / 'r.json')])
    assert json.loads((tmp_path / 'r.json').read_text())['results'] == report['results']
    assert report['loaded'] == 'PerA (whole model)'
    for name in SETS:
        res = report['results'][name]
        assert (res['classes'], res['bank'], res['queries']) == (4, 20, 20)
        assert set(res) >= {'checkpoint', 'random-init', 'colour-histogram'}
        for metric in ('knn_top1_k20', 'knn_top1_k1', 'linear_top1'):
            logged = last[f'{name}/{metric}']
            assert res['checkpoint'][metric] == pytest.approx(logged, abs=1e-6), (name, metric)
        assert all(-1.0 <= res[arm]['mean_cosine'] <= 1.0 for arm in probe.ARMS)
    # an extracted teacher backbone scores exactly as the whole checkpoint
    state = unwrap_state_dict(torch.load(ckpt, map_location='cpu', weights_only=False), str(ckpt))
    backbone = tmp_path / 'teacher_backbone.pth'
    save_weights_file(extract_backbone(state, 'teacher', 'mmpretrain'), str(backbone), {})
    again = probe.main_([str(run['config']), str(backbone), '--sets', f'aid={run["roots"]["aid"]}'])
    assert 'extracted backbone' in again['loaded']
    assert again['results']['aid']['checkpoint'] == report['results']['aid']['checkpoint']
    assert (
        again['results']['aid']['colour-histogram'] == report['results']['aid']['colour-histogram']
    )


def test_probe_tool_help_and_one_line_errors(run, tmp_path, capsys):
    probe = load_probe()
    with pytest.raises(SystemExit) as done:
        probe.main(['--help'])
    assert done.value.code == 0 and 'colour histogram' in capsys.readouterr().out
    small = tmp_path / 'small' / 'OnlyClass'
    small.mkdir(parents=True)
    for i in range(1, 8):
        (small / f'img_{i}.jpg').write_bytes(b'')
    cases = [
        (['--sets', f'tiny={small.parent}'], 4, 'data error: evaluation set class folder'),
        (['--sets', 'aid'], 3, "config error: --sets: expected NAME=DIR, got 'aid'"),
        (['--data-root', str(tmp_path / 'nowhere')], 5, 'file not found: evaluation set'),
    ]
    lines = []
    for extra, code, text in cases:
        with pytest.raises(SystemExit) as done:
            probe.main([str(run['config']), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert done.value.code == code and len(err) == 1, err
        assert err[0].startswith(f'knn_probe.py: {text}'), err[0]
        lines.append(err[0])
    assert 'OnlyClass: has 7 of the 10 images the split needs' in lines[0]
