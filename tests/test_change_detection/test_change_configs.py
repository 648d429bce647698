"""configs/change_detection/: the paper's recipe values, every type resolves, models build."""

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS, MODELS, TRANSFORMS

import pera_mm  # noqa: F401
from pera_mm.testing import REPO_ROOT

CONFIG_DIR = REPO_ROOT / 'configs' / 'change_detection'
PAPER = ['base', 'large', 'giant1024']


def _cfg(name):
    return Config.fromfile(str(CONFIG_DIR / name))


def _paper(arch):
    return _cfg(f'bit_pera-vit-{arch}-p16_1xb8-500e_levir-cd-512x512.py')


def test_paper_recipe_values():
    widths = dict(base=768, large=1024, giant1024=1024)
    for arch in PAPER:
        cfg = _paper(arch)
        assert cfg.default_scope == 'mmseg'
        assert cfg.model.type == 'SiameseEncoderDecoder'
        assert cfg.model.backbone.drop_path_rate == 0.2
        assert cfg.model.neck.in_channels == widths[arch]
        assert cfg.model.decode_head.type == 'BITHead'
        assert cfg.train_dataloader.batch_size == 8
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.optimizer.lr == 1e-4
        (sched,) = cfg.param_scheduler
        assert sched.final_value == 1e-6 and sched.start_factor == 0.0
        assert cfg.train_cfg.max_epochs == 500
        steps = [t.type for t in cfg.train_dataloader.dataset.pipeline]
        assert 'BitemporalRandomResizedCrop' in steps and 'BitemporalRandomFlip' in steps
        assert not any('Color' in s or 'Photo' in s for s in steps)  # no colour jitter
        crop = [t for t in cfg.train_dataloader.dataset.pipeline if 'Resized' in t.type][0]
        assert tuple(crop.size) == (512, 512)
        assert cfg.model.test_cfg.mode == 'slide' and tuple(cfg.model.test_cfg.crop_size) == (
            512,
            512,
        )
        assert cfg.default_hooks.checkpoint.save_best == 'changed/F1'
        assert cfg.val_evaluator.type == 'ChangeDetectionMetric'


def test_every_type_resolves():
    init_default_scope('mmseg')
    registries = (MODELS, DATASETS, TRANSFORMS)
    for path in sorted(CONFIG_DIR.glob('*.py')):
        cfg = Config.fromfile(str(path))
        stack = [cfg.model, cfg.train_dataloader.dataset, cfg.test_dataloader.dataset]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get('type'), str) and node['type'] not in ('Pretrained',):
                    assert any(r.get(node['type']) for r in registries), (path.name, node['type'])
                stack.extend(v for k, v in node.items() if k != 'init_cfg')
            elif isinstance(node, (list, tuple)):
                stack.extend(node)


def test_base_models_build_and_bit_r18_runs():
    init_default_scope('mmseg')
    for name in [
        'bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py',
        'fcn-absdiff_pera-vit-base-p16_1xb8-500e_levir-cd-512x512.py',
        'bit_pera-vit-adapter-base-p16_1xb8-500e_levir-cd-512x512.py',
    ]:
        cfg = _cfg(name)
        cfg.model.backbone.init_cfg = None
        if cfg.model.backbone.get('norm_cfg'):
            cfg.model.backbone.norm_cfg = dict(type='BN', requires_grad=True)
        model = MODELS.build(cfg.model)
        assert model.neck.proj.out_channels == cfg.model.decode_head.in_channels
    cfg = _cfg('bit_r18_1xb8-200e_levir-cd-256x256.py')
    assert cfg.optim_wrapper.optimizer.type == 'SGD' and cfg.optim_wrapper.optimizer.lr == 0.01
    assert cfg.param_scheduler[0].end == 201 and cfg.train_cfg.max_epochs == 200
    model = MODELS.build(cfg.model).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 6, 64, 64), mode='tensor')
    assert logits.shape == (1, 2, 64, 64)


def test_precut_protocol_reads_flat_crops():
    cfg = _cfg('bit_pera-vit-base-p16_1xb8-500e_levir-cd-512x512_test-precut.py')
    assert cfg.model.test_cfg == dict(mode='whole')
    assert cfg.test_dataloader.dataset.data_prefix == dict(
        img_path='A', img_path_b='B', seg_map_path='label'
    )
    assert cfg.test_dataloader.dataset.ann_file == 'list/test.txt'
