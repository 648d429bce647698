# Copyright (c) pera-mm contributors. All rights reserved.
"""tools/train.py + tools/test.py on the real Potsdam/Vaihingen crops and LoveDA tiles.

For each dataset: the crops or tiles of ``../shared/data`` are arranged in a temporary
folder in MMSeg's layout (symlinks; the same images are the train and the val split), a
PerA checkpoint is made, the CPU smoke config is trained for 4 iterations from it, and
tools/test.py evaluates the result. Checked: the loss goes down, the ViT holds the
checkpoint's teacher tensors, the predictions have the labels' size, and the metrics of
tools/test.py equal an evaluation computed here from its prediction PNGs and the label
files.
"""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from PIL import Image

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.testing.tool_runs import data_root_options, read_scalars

TOOLS = REPO_ROOT / 'tools'
SEG = REPO_ROOT / 'configs/segmentation'

#: dataset -> (shared folder, image folder, label folder, number of classes)
DATA = {
    'potsdam': ('ISPRS/Potsdam_mmseg', 'img_dir', 'ann_dir', 6),
    'vaihingen': ('ISPRS/Vaihingen_mmseg', 'img_dir', 'ann_dir', 6),
    'loveda': ('LoveDA/Train/Rural', 'images_png', 'masks_png', 7),
}


def smoke_config(name: str) -> Path:
    return SEG / f'upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_{name}-64x64_cpu-smoke.py'


def arrange(shared_path, name: str, root: Path) -> Path:
    """MMSeg's ``img_dir/{train,val}``, ``ann_dir/{train,val}`` layout, by symlinks."""
    src, img, ann, _ = DATA[name]
    src = shared_path(src)
    for split in ('train', 'val'):
        for sub, kind in ((img, 'img_dir'), (ann, 'ann_dir')):
            dst = root / kind / split
            dst.mkdir(parents=True)
            for f in sorted((src / sub).glob('*.png')):
                (dst / f.name).symlink_to(f)
    return root


def evaluate_pngs(pred_dir: Path, label_dir: Path, num_classes: int, subsets=None):
    """aAcc, mIoU, mF1 (and subset means) from PNGs, as the ISPRS/LoveDA definitions.

    Both the predictions (written +1 under ``reduce_zero_label``) and the labels are in the
    raw values: 0 is ignored, ``v`` is class ``v - 1``.
    """
    inter = np.zeros(num_classes)
    pred_area = np.zeros(num_classes)
    label_area = np.zeros(num_classes)
    for label_file in sorted(label_dir.glob('*.png')):
        label = np.array(Image.open(label_file)).astype(np.int64)
        pred = np.array(Image.open(pred_dir / label_file.name)).astype(np.int64)
        assert pred.shape == label.shape, label_file.name  # predictions at the label's size
        keep = label != 0
        p, t = pred[keep] - 1, label[keep] - 1
        assert p.min() >= 0 and p.max() < num_classes
        inter += np.bincount(t[p == t], minlength=num_classes)
        pred_area += np.bincount(p, minlength=num_classes)
        label_area += np.bincount(t, minlength=num_classes)
    with np.errstate(invalid='ignore', divide='ignore'):
        iou = inter / (pred_area + label_area - inter)
        f1 = 2 * inter / (pred_area + label_area)
    out = dict(aAcc=inter.sum() / label_area.sum() * 100)
    out['mIoU'], out['mF1'] = np.nanmean(iou) * 100, np.nanmean(f1) * 100
    for name, idx in (subsets or {}).items():
        out[f'mIoU_{name}'] = np.nanmean(iou[idx]) * 100
        out[f'mF1_{name}'] = np.nanmean(f1[idx]) * 100
    return out


@pytest.fixture(scope='module')
def pera_ckpt(tmp_path_factory):
    return make_pera_checkpoint(tmp_path_factory.mktemp('pera') / 'pera_tiny_64px.pth')


@pytest.mark.needs_shared
@pytest.mark.parametrize('name', list(DATA))
def test_train_then_test_from_a_pera_checkpoint(
    name, tmp_path, shared_path, pera_ckpt, load_script
):
    from mmseg.registry import MODELS

    ckpt, teacher = pera_ckpt
    root = arrange(shared_path, name, tmp_path / 'data')
    cfg_path = smoke_config(name)
    opts = data_root_options(root, ckpt)
    work = tmp_path / 'work'
    train = load_script(TOOLS / 'train.py')
    train.main([str(cfg_path), '--work-dir', str(work), '--cfg-options', *opts])

    # the loss goes down over the 4 iterations (fixed 64 px views of the same images)
    log = [s for s in read_scalars(work) if 'loss' in s]
    assert [s['iter'] for s in log] == [1, 2, 3, 4]
    assert log[-1]['loss'] < log[0]['loss'], [s['loss'] for s in log]
    text = next(work.glob('*/*.log')).read_text()
    assert 'PerAViTAdapter: loaded' in text and f'from {ckpt} (pera layout, teacher)' in text

    # the ViT the run starts from holds the checkpoint's teacher tensors
    cfg = Config.fromfile(str(work / cfg_path.name))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.backbone.state_dict()
    shared_keys = [k for k in teacher if k in state]
    assert set(teacher) - set(shared_keys) <= {'cls_token', 'norm.weight', 'norm.bias'}
    assert len(shared_keys) == 1 + 2 + 4 * 12  # pos embed, patch embed, 4 blocks
    for key in shared_keys:
        torch.testing.assert_close(state[key], teacher[key], rtol=0, atol=0, msg=key)

    # tools/test.py: metrics and prediction PNGs (MMSeg's --out DIR)
    test = load_script(TOOLS / 'test.py')
    pred_dir = tmp_path / 'pred_png'
    metrics = test.main(
        [
            str(cfg_path),
            str(work / 'iter_4.pth'),
            '--work-dir',
            str(tmp_path / 'test'),
            '--out',
            str(pred_dir),
            '--cfg-options',
            *opts,
        ]
    )
    num_classes = DATA[name][3]
    subsets = dict(no_clutter=[0, 1, 2, 3, 4]) if name != 'loveda' else None
    expected = evaluate_pngs(pred_dir, root / 'ann_dir/val', num_classes, subsets)
    assert set(expected) <= set(metrics)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=0.006), key
    classes = cfg.val_dataloader.dataset.get('metainfo', {}).get('classes')
    per_class = [k for k in metrics if k.startswith('IoU.')]
    assert len(per_class) == num_classes and (classes is None or len(classes) == num_classes)


@pytest.mark.needs_shared
def test_test_py_mmseg_flags_pkl_show_dir_tta(tmp_path, shared_path, pera_ckpt, load_script):
    """``--out x.pkl``, ``--show-dir`` and ``--tta`` on the Potsdam smoke config."""
    ckpt, _ = pera_ckpt
    root = arrange(shared_path, 'potsdam', tmp_path / 'data')
    cfg_path = smoke_config('potsdam')
    opts = data_root_options(root, ckpt)
    test = load_script(TOOLS / 'test.py')
    # an untrained model is enough: the checkpoint is the PerA file (no segmentor keys
    # -> heads keep their init); the backbone loads the teacher through init_cfg
    weights = tmp_path / 'seg.pth'
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(cfg_path))
    cfg.merge_from_dict(dict(model=dict(backbone=dict(init_cfg=dict(checkpoint=str(ckpt))))))
    with DefaultScope.overwrite_default_scope('mmseg'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, weights)

    out = tmp_path / 'preds.pkl'
    show = tmp_path / 'show'
    metrics = test.main(
        [str(cfg_path), str(weights), '--work-dir', str(tmp_path / 't1'), '--out', str(out)]
        + ['--show-dir', str(show), '--cfg-options', *opts]
    )
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    label = np.array(Image.open(root / 'ann_dir/val/2_10_0_0_512_512.png'))
    (pred,) = preds
    assert tuple(pred['pred_sem_seg']['data'].shape[-2:]) == label.shape
    assert tuple(pred['gt_sem_seg']['data'].shape[-2:]) == label.shape
    painted = sorted(show.rglob('*.png'))
    assert painted and '2_10_0_0_512_512' in painted[0].name
    h, w = label.shape
    assert Image.open(painted[0]).size == (2 * w, h)  # labels and prediction side by side

    tta = test.main(
        [str(cfg_path), str(weights), '--work-dir', str(tmp_path / 't2'), '--tta']
        + ['--cfg-options', *opts]
    )
    assert set(tta) == set(metrics) and 0 <= tta['aAcc'] <= 100
    dumped = Config.fromfile(str(next((tmp_path / 't2').glob('*/vis_data/config.py'))))
    assert dumped.model.type == 'SegTTAModel' and dumped.model.module.type == 'EncoderDecoder'
