# Copyright (c) pera-mm contributors. All rights reserved.
"""How tools/test.py applies MMSeg's --out DIR, --show-dir and --tta to a seg config."""

import pytest
from mmengine.config import Config

from pera_mm.testing import REPO_ROOT
from pera_mm.utils import PeraConfigError

TOOLS = REPO_ROOT / 'tools'
SMOKE = REPO_ROOT / (
    'configs/segmentation/upernet_pera-vit-adapter-tiny-p16_1xb2-4iter_potsdam-64x64_cpu-smoke.py'
)
TOY = REPO_ROOT / 'tests/data/toy_runner_config.py'


def _merged(test, config, *flags):
    cfg = Config.fromfile(str(config), import_custom_modules=False)
    return test.merge_args(cfg, test.parse_args([str(config), str(config), *flags]))


def test_seg_flags_set_what_mmseg_sets(load_script, tmp_path):
    test = load_script(TOOLS / 'test.py')
    cfg = _merged(test, SMOKE, '--out', str(tmp_path / 'png'), '--show-dir', 'vis', '--tta')
    assert cfg.test_evaluator.output_dir == str(tmp_path / 'png')
    assert cfg.default_hooks.visualization.draw is True and cfg.visualizer.save_dir == 'vis'
    assert cfg.model.type == 'SegTTAModel' and cfg.model.module.type == 'EncoderDecoder'
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'TestTimeAug'
    # a test run needs no training data (SegVisualizationHook would build the train loop)
    assert cfg.train_dataloader is None and cfg.train_cfg is None and cfg.optim_wrapper is None
    assert cfg.load_from == str(SMOKE)
    pkl = _merged(test, SMOKE, '--out', 'preds.pkl')
    assert 'output_dir' not in pkl.test_evaluator  # .pkl: DumpResults, whatever the config


def test_seg_flag_errors_are_one_line(load_script):
    test = load_script(TOOLS / 'test.py')
    cfg = Config.fromfile(str(SMOKE), import_custom_modules=False)
    cfg.tta_pipeline = None
    with pytest.raises(PeraConfigError, match=r'^--tta: .* has no tta_pipeline'):
        test.merge_args(cfg, test.parse_args([str(SMOKE), str(SMOKE), '--tta']))
    cfg = Config.fromfile(str(SMOKE), import_custom_modules=False)
    cfg.default_hooks.pop('visualization')
    with pytest.raises(PeraConfigError, match=r'^--show/--show-dir: .* no default_hooks'):
        test.merge_args(cfg, test.parse_args([str(SMOKE), str(SMOKE), '--show-dir', 'v']))
    with pytest.raises(PeraConfigError, match=r'expected a \.pkl or \.pickle file'):
        _merged(test, TOY, '--out', 'somewhere')  # a folder of PNGs only for MMSeg configs
