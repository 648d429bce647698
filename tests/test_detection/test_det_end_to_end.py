# Copyright (c) pera-mm contributors. All rights reserved.
"""tools/train.py + tools/test.py on the DIOR-layout fixture made from real DOTA samples.

A PerA checkpoint is made, the CPU smoke config trains 4 iterations from it (train split,
validation on val) and tools/test.py evaluates the result on the test split with both AP
modes. Checked: the loss goes down, the ViT holds the checkpoint's teacher tensors, the box
counts are logged per split, the metric keys are there with valid values, and the dumped
predictions are in original-image pixels. A class DIOR does not have stops tools/train.py with
one line naming the file.
"""

import pickle
import shutil

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT, make_pera_checkpoint
from pera_mm.testing.tool_runs import data_root_options, read_scalars

TOOLS = REPO_ROOT / 'tools'
SMOKE = (
    REPO_ROOT
    / 'configs/detection'
    / ('faster-rcnn_pera-vit-adapter-tiny-p16_fpn_1xb2-4iter_dior-128x128_cpu-smoke.py')
)
VOC_KEYS = ('voc_area/mAP', 'voc_area/AP50')
COCO_KEYS = (
    'coco/AP',
    'coco/AP50',
    'coco/AP75',
    'coco/AP_small',
    'coco/AP_medium',
    'coco/AP_large',
)


def _count_line(split, c):
    return (
        f'DIORDataset [{split}]: {c["images"]} images, {c["boxes"]} boxes kept '
        f'({c["difficult"]} difficult, ignored); {c["clipped"]} partly outside the image '
        f'clipped; skipped {c["skipped_outside"]} fully outside and '
        f'{c["skipped_degenerate"]} degenerate'
    )


@pytest.fixture(scope='module')
def trained(dior_data, tmp_path_factory, load_script):
    root, manifest = dior_data
    tmp = tmp_path_factory.mktemp('det')
    ckpt, teacher = make_pera_checkpoint(tmp / 'pera_tiny_64px.pth')
    work = tmp / 'work'
    train = load_script(TOOLS / 'train.py')
    opts = data_root_options(root, ckpt)
    train.main([str(SMOKE), '--work-dir', str(work), '--cfg-options', *opts])
    return dict(root=root, manifest=manifest, tmp=tmp, ckpt=ckpt, teacher=teacher, work=work)


@pytest.mark.needs_shared
def test_train_from_a_pera_checkpoint(trained):
    work, ckpt, manifest = trained['work'], trained['ckpt'], trained['manifest']
    assert (work / 'iter_4.pth').is_file()
    scalars = read_scalars(work)
    losses = [s for s in scalars if 'loss' in s]
    assert [s['iter'] for s in losses] == [1, 2, 3, 4]
    assert losses[-1]['loss'] < losses[0]['loss'], [s['loss'] for s in losses]
    for key in ('loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox'):
        assert all(torch.isfinite(torch.tensor(s[key])) for s in losses), key
    (val,) = [s for s in scalars if 'voc_area/mAP' in s]  # validation at iteration 4
    assert set(VOC_KEYS + COCO_KEYS) <= set(val)

    log = next(work.glob('*/*.log')).read_text()
    assert f'PerAViTAdapter: loaded 51 ViT tensors from {ckpt} (pera layout, teacher)' in log
    assert 'layer-wise lr decay: rate 0.9, 6 backbone depths' in log
    for split in ('train', 'val'):
        assert _count_line(split, manifest[split]) in log

    # the ViT the run starts from holds the checkpoint's teacher tensors
    from mmdet.registry import MODELS

    cfg = Config.fromfile(str(work / SMOKE.name))
    with DefaultScope.overwrite_default_scope('mmdet'):
        model = MODELS.build(cfg.model)
    model.init_weights()
    state = model.backbone.state_dict()
    teacher = trained['teacher']
    shared = [k for k in teacher if k in state]
    assert set(teacher) - set(shared) == {'cls_token', 'norm.weight', 'norm.bias'}
    assert len(shared) == 1 + 2 + 4 * 12  # pos embed, patch embed, 4 blocks
    for key in shared:
        torch.testing.assert_close(state[key], teacher[key], rtol=0, atol=0, msg=key)


@pytest.mark.needs_shared
def test_test_py_reports_both_ap_modes(trained, load_script):
    tmp, manifest = trained['tmp'], trained['manifest']
    out = tmp / 'preds.pkl'
    test = load_script(TOOLS / 'test.py')
    metrics = test.main(
        [str(SMOKE), str(trained['work'] / 'iter_4.pth'), '--work-dir', str(tmp / 'test')]
        + ['--out', str(out), '--cfg-options', *data_root_options(trained['root'], trained['ckpt'])]
    )
    assert set(VOC_KEYS + COCO_KEYS) <= set(metrics)
    for key in VOC_KEYS + ('coco/AP', 'coco/AP50', 'coco/AP75', 'coco/AP_small'):
        assert 0.0 <= metrics[key] <= 1.0, key
    log = next((tmp / 'test').glob('*/*.log')).read_text()
    assert _count_line('test', manifest['test']) in log
    assert 'COCO-style box AP (pycocotools, max 100 dets/image, inclusive-pixel (+1) widths)' in log

    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert [p['img_id'] for p in preds] == manifest['test']['ids']
    for p in preds:
        assert tuple(p['ori_shape']) == (128, 128)
        boxes = p['pred_instances']['bboxes']
        assert len(boxes) <= 200  # max_per_img of the paper's test setting
        assert (p['pred_instances']['scores'] >= 0.01).all()  # score threshold
        if len(boxes):
            assert boxes.min() >= 0 and boxes.max() <= 128  # original-image pixels
        want = [d for *_, d in manifest['objects'][p['img_id']]]
        assert len(p['gt_instances']['bboxes']) == want.count(0)
        assert len(p['ignored_instances']['bboxes']) == want.count(1)


@pytest.mark.needs_shared
def test_a_class_not_in_dior_stops_training_with_one_line(dior_data, tmp_path, load_script, capsys):
    root, manifest = dior_data
    bad = tmp_path / 'DIOR'
    shutil.copytree(root, bad)
    img_id = manifest['train']['ids'][1]
    xml = bad / 'Annotations/Horizontal Bounding Boxes' / f'{img_id}.xml'
    text = xml.read_text()
    xml.write_text(text.replace('<name>ship</name>', '<name>helicopter</name>', 1))
    assert xml.read_text() != text
    # make_pera_checkpoint builds the PerA model in the current default scope, which an
    # earlier Runner of this module may have left at mmdet
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        ckpt, _ = make_pera_checkpoint(tmp_path / 'pera_tiny_64px.pth')
    train = load_script(TOOLS / 'train.py')
    with pytest.raises(SystemExit) as exit_info:
        train.main(
            [str(SMOKE), '--work-dir', str(tmp_path / 'work'), '--cfg-options']
            + data_root_options(bad, ckpt)
        )
    assert exit_info.value.code == 4  # data error
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith('train.py: data error: ')
    assert f'{xml}: object ' in err[0] and "has class 'helicopter', not a DIOR class" in err[0]
