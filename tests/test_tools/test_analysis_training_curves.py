"""tools/analysis_tools/training_curves.py on the scalars.json of a real 2-iteration PerA run."""

import json
import shutil

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.resume_run import run_training, unique_experiment_name
from pera_mm.utils.cli import PeraCliErrors
from pera_mm.visualization import (
    collapse_thresholds,
    find_scalars_files,
    read_scalar_rows,
    train_curves,
)

TOOL = REPO_ROOT / 'tools/analysis_tools/training_curves.py'
DEMO = REPO_ROOT / 'configs/pera/pera_vit-tiny-p16_1xb32-20e_demo-96px.py'
MONITOR = (
    'monitor_cls_cosine',
    'monitor_cls_erank',
    'monitor_target_entropy',
    'monitor_target_batch_entropy',
)


@pytest.fixture(scope='module')
def work_dir(shared_path, tmp_path_factory):
    """The demo config trained for 2 iterations on real AID tiles (batch 4, every step logged)."""
    work = tmp_path_factory.mktemp('curves_run')
    cfg = Config.fromfile(DEMO)
    cfg.work_dir = str(work)
    cfg.train_dataloader.update(batch_size=4, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.data_root = str(shared_path('AID_150px'))
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2)
    cfg.param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False)]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=100, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(window_size=1, by_epoch=False)
    cfg.experiment_name = unique_experiment_name(work)
    runner = run_training(cfg)
    return work, runner.message_hub


def one_error_line(err: str) -> str:
    """The tool's error: one line after any progress-bar output, and no traceback."""
    assert 'Traceback' not in err, err
    return err.rstrip('\n').split('\n')[-1]


def run_cli(tool, argv, capsys):
    code = 0
    try:
        PeraCliErrors.run(tool.main, argv, tool='training_curves')
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.needs_shared
def test_curves_are_the_logged_values(load_script, work_dir, tmp_path, capsys):
    work, hub = work_dir
    tool = load_script(TOOL)
    js = tmp_path / 'curves.json'
    code, stdout, err = run_cli(tool, [str(work), '--json', str(js)], capsys)
    assert code == 0, err
    (scalars,) = work.glob('*/vis_data/scalars.json')
    logged = [json.loads(line) for line in scalars.read_text().splitlines()]
    assert [row['iter'] for row in logged] == [1, 2]
    series = json.loads(js.read_text())
    losses, monitor = series['losses'], series['collapse monitor']
    assert {'loss', 'loss_cls_global', 'loss_cls_local', 'loss_koleo', 'loss_pixel'} <= set(losses)
    assert set(monitor) == set(MONITOR)
    for panel in (losses, monitor, series['schedules']):
        for key, curve in panel.items():
            assert curve['steps'] == [1, 2]
            assert curve['values'] == pytest.approx([row[key] for row in logged], rel=1e-12)
    # what the collapse monitor hook read from the message hub is what is plotted
    for key in MONITOR:
        assert monitor[key]['values'][-1] == pytest.approx(hub.get_scalar(f'train/{key}').current())
    assert series['validation'] == {}
    assert set(series['schedules']) == {'lr', 'grad_norm', 'teacher_temp', 'teacher_momentum'}
    png = work / 'training_curves.png'
    assert f'to {png}' in stdout
    figure = np.asarray(Image.open(png))
    assert figure.shape[:2] == (680, 1800) and figure.std() > 10  # 2 rows of 4 panels
    files = find_scalars_files(work)
    assert collapse_thresholds(files) == {  # the demo config's collapse_monitor + defaults
        'teacher cls cosine': 0.6,
        'teacher cls effective rank': 2.0,
    }


@pytest.mark.needs_shared
def test_a_resumed_run_replaces_its_repeated_steps(work_dir, tmp_path):
    work, _ = work_dir
    (first,) = work.glob('*/vis_data/scalars.json')
    copy = tmp_path / 'work'
    shutil.copytree(work, copy)
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    resumed = dict(rows[-1], loss=1.25)  # iteration 2 again, then 3
    later = copy / '99999999_999999' / 'vis_data'
    later.mkdir(parents=True)
    lines = [resumed, dict(resumed, iter=3, step=3, loss=1.0), {'accuracy/top1': 50.0, 'step': 1}]
    (later / 'scalars.json').write_text('\n'.join(json.dumps(r) for r in lines) + '\n')
    files = find_scalars_files(copy)
    assert [f.parent.parent.name for f in files][-1] == '99999999_999999'
    steps, values = train_curves(read_scalar_rows(files))['loss']
    assert steps.tolist() == [1, 2, 3]
    assert values.tolist() == [rows[0]['loss'], 1.25, 1.0]


@pytest.mark.needs_shared
def test_bad_input_is_one_line(load_script, work_dir, tmp_path, capsys):
    tool = load_script(TOOL)
    (tmp_path / 'empty').mkdir()
    bad = tmp_path / 'bad.json'
    bad.write_text('{"loss": 1.0, "iter": 1, "step": 1}\nnot json\n')
    no_loss = tmp_path / 'no_loss.json'
    no_loss.write_text('{"lr": 0.1, "iter": 1, "step": 1}\n')
    cases = [
        ([str(tmp_path / 'missing')], 5, 'no such work dir'),
        ([str(tmp_path / 'empty')], 5, 'no <timestamp>/vis_data/scalars.json'),
        ([str(bad)], 4, 'bad.json:2: not a JSON line'),
        ([str(no_loss)], 4, 'no loss* key'),
    ]
    for argv, code, text in cases:
        got, _, err = run_cli(tool, argv + ['--out', str(tmp_path / 'x.png')], capsys)
        assert got == code, err
        assert one_error_line(err).startswith('training_curves: ') and text in one_error_line(
            err
        ), err
    with pytest.raises(SystemExit) as e:
        tool.parse_args(['--help'])
    assert e.value.code == 0 and 'scalars.json' in capsys.readouterr().out
