"""tools/train.py, tools/test.py and the launcher scripts, end to end on a toy
MMEngine config (tests/data/toy_runner_config.py)."""

import os
import pickle
import stat
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from pera_mm.testing import REPO_ROOT
from pera_mm.testing.tool_runs import read_latest_log, run_tool
from pera_mm.utils import PeraConfigError, setup_torch_load_compat

setup_torch_load_compat()  # the tests read MMEngine checkpoints weights-only

TOOLS = REPO_ROOT / 'tools'
CONFIG = REPO_ROOT / 'tests' / 'data' / 'toy_runner_config.py'


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """2 iterations with --amp (CPU: AutoAmpOptimWrapper -> fp32), then
    --resume (auto) continues to 4."""
    tmp = tmp_path_factory.mktemp('train')
    work_dir = tmp / 'work'
    run_tool(
        [
            sys.executable,
            str(TOOLS / 'train.py'),
            str(CONFIG),
            '--work-dir',
            str(work_dir),
            '--amp',
            '--local-rank',
            '0',
        ],
        cwd=tmp,
    )
    first_log = read_latest_log(work_dir)
    first_cfg = Config.fromfile(str(work_dir / 'toy_runner_config.py'), import_custom_modules=False)
    run_tool(
        [
            sys.executable,
            str(TOOLS / 'train.py'),
            str(CONFIG),
            '--work-dir',
            str(work_dir),
            '--resume',
            '--cfg-options',
            'train_cfg.max_iters=4',
        ],
        cwd=tmp,
    )
    return dict(
        tmp=tmp,
        work_dir=work_dir,
        first_log=first_log,
        first_cfg=first_cfg,
        resume_log=read_latest_log(work_dir),
    )


def test_train_two_iterations(trained):
    work_dir = trained['work_dir']
    assert (work_dir / 'iter_2.pth').is_file()
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=False)
    assert ckpt['meta']['iter'] == 2
    log = trained['first_log']
    assert 'Iter(train) [2/2]' in log
    assert 'AutoAmpOptimWrapper: no CUDA/NPU/MLU/MUSA device' in log
    dumped = trained['first_cfg']
    assert dumped.default_scope == 'mmpretrain'
    assert dumped.optim_wrapper.type == 'AutoAmpOptimWrapper'
    assert dumped.optim_wrapper.loss_scale == 'dynamic'


def test_resume_auto_continues_from_saved_iteration(trained):
    work_dir = trained['work_dir']
    log = trained['resume_log']
    assert 'resumed epoch: 0, iter: 2' in log
    assert 'Iter(train) [1/4]' not in log
    assert 'Iter(train) [3/4]' in log and 'Iter(train) [4/4]' in log
    ckpt = torch.load(work_dir / 'iter_4.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 4
    # the loss history of the first run was carried over (2 + 2 entries)
    loss_history = ckpt['message_hub']['log_scalars']['train/loss'].data[0]
    assert len(loss_history) == 4


def test_test_py_evaluates_and_dumps(trained):
    tmp, work_dir = trained['tmp'], trained['work_dir']
    out = tmp / 'preds.pkl'
    run_tool(
        [
            sys.executable,
            str(TOOLS / 'test.py'),
            str(CONFIG),
            str(work_dir / 'iter_4.pth'),
            '--work-dir',
            str(tmp / 'test_work'),
            '--out',
            str(out),
            '--local_rank',
            '0',
        ],
        cwd=tmp,
    )
    with open(out, 'rb') as f:
        preds = pickle.load(f)
    assert len(preds) == 8
    assert {'pred', 'target'} <= set(preds[0])
    assert 'Iter(test) [4/4]' in read_latest_log(tmp / 'test_work')


@pytest.mark.parametrize('flag', ['--local-rank', '--local_rank'])
def test_local_rank_spellings(flag, monkeypatch, load_script):
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    train = load_script(TOOLS / 'train.py')
    args = train.parse_args([str(CONFIG), flag, '3'])
    assert args.local_rank == 3 and os.environ['LOCAL_RANK'] == '3'
    test = load_script(TOOLS / 'test.py')
    monkeypatch.setenv('LOCAL_RANK', '1')  # torchrun's value wins
    args = test.parse_args([str(CONFIG), str(CONFIG), flag, '3'])
    assert args.local_rank == 3 and os.environ['LOCAL_RANK'] == '1'


def test_merge_args(load_script):
    train = load_script(TOOLS / 'train.py')
    cfg = train.merge_args(
        Config.fromfile(str(CONFIG), import_custom_modules=False),
        train.parse_args(
            [
                str(CONFIG),
                '--auto-scale-lr',
                '--no-validate',
                '--resume',
                str(CONFIG),
                '--cfg-options',
                'train_cfg.max_iters=7',
            ]
        ),
    )
    assert cfg.auto_scale_lr.enable is True
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    assert cfg.resume is True and cfg.load_from == str(CONFIG)
    assert cfg.train_cfg.max_iters == 7
    assert cfg.work_dir == './work_dirs/toy_runner_config'
    assert cfg.launcher == 'none'


def _exit_message(main, argv, capsys):
    """Run a tool's main in-process; return its one-line error."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err.strip()
    msg = exc.value.code if isinstance(exc.value.code, str) else err.splitlines()[-1]
    assert '\n' not in msg and 'Traceback' not in err
    return msg


def test_bad_input_is_one_line(tmp_path, capsys, load_script):
    train, test = load_script(TOOLS / 'train.py'), load_script(TOOLS / 'test.py')
    msg = _exit_message(train.main, [str(tmp_path / 'nope.py')], capsys)
    assert msg.endswith(f'config file {tmp_path / "nope.py"} does not exist')
    bad = tmp_path / 'bad_amp.py'
    bad.write_text(f"_base_ = '{CONFIG}'\noptim_wrapper = dict(type='ApexOptimWrapper')\n")
    cfg = Config.fromfile(str(bad), import_custom_modules=False)
    with pytest.raises(PeraConfigError, match=r"^--amp: optim_wrapper.type='ApexOptimWrapper'"):
        train.merge_args(cfg, train.parse_args([str(bad), '--amp']))
    msg = _exit_message(train.main, [str(bad), '--amp'], capsys)
    assert "--amp: optim_wrapper.type='ApexOptimWrapper'" in msg
    msg = _exit_message(test.main, [str(CONFIG), str(tmp_path / 'x.pth')], capsys)
    assert msg.endswith(f'checkpoint {tmp_path / "x.pth"} does not exist')
    msg = _exit_message(test.main, [str(CONFIG), str(CONFIG), '--out', 'a.json'], capsys)
    assert 'expected a .pkl or .pickle file' in msg


def test_dist_train_sh_runs_two_cpu_processes(tmp_path):
    """torchrun + --launcher pytorch on a CPU-only machine (gloo fallback)."""
    work_dir = tmp_path / 'work'
    run_tool(
        [
            'bash',
            str(TOOLS / 'dist_train.sh'),
            str(CONFIG),
            '2',
            '--work-dir',
            str(work_dir),
            '--no-validate',
        ],
        cwd=tmp_path,
        PORT=str(29500 + os.getpid() % 1000),
        OMP_NUM_THREADS='1',
    )
    log = read_latest_log(work_dir)
    assert 'Distributed launcher: pytorch' in log
    assert 'Distributed training: True' in log
    ckpt = torch.load(work_dir / 'iter_2.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 2
    dumped = Config.fromfile(str(work_dir / 'toy_runner_config.py'), import_custom_modules=False)
    assert dumped.env_cfg.dist_cfg.backend == 'gloo'
    assert dumped.model_wrapper_cfg.device_ids is None


def _fake_launcher(bin_dir, name):
    """A stand-in for torchrun/srun that records its argv and PYTHONPATH."""
    script = bin_dir / name
    script.write_text(
        '#!/usr/bin/env bash\n'
        'printf "%s\\n" "$PYTHONPATH" > "$FAKE_OUT"\n'
        'printf "%s\\n" "$@" >> "$FAKE_OUT"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def _launch(tmp_path, launcher, script, args, **env):
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir(exist_ok=True)
    _fake_launcher(bin_dir, launcher)
    out = tmp_path / 'argv.txt'
    run_tool(
        ['bash', str(TOOLS / script)] + args,
        cwd=tmp_path,
        PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
        FAKE_OUT=str(out),
        **env,
    )
    pythonpath, *argv = out.read_text().splitlines()
    assert Path(pythonpath.split(os.pathsep)[0]).resolve() == REPO_ROOT
    return argv


def test_dist_test_sh_arguments(tmp_path):
    argv = _launch(
        tmp_path,
        'torchrun',
        'dist_test.sh',
        ['cfg.py', 'ckpt.pth', '4', '--out', 'x.pkl'],
        NNODES='2',
        NODE_RANK='1',
        PORT='29123',
        MASTER_ADDR='127.0.0.2',
    )
    assert argv[:5] == [
        '--nnodes=2',
        '--node_rank=1',
        '--master_addr=127.0.0.2',
        '--nproc_per_node=4',
        '--master_port=29123',
    ]
    assert Path(argv[5]).resolve() == TOOLS / 'test.py'
    assert argv[6:] == ['cfg.py', 'ckpt.pth', '--launcher', 'pytorch', '--out', 'x.pkl']


@pytest.mark.parametrize(
    'script,positional,tool,expected_tail',
    [
        (
            'slurm_train.sh',
            ['part', 'job', 'cfg.py', 'wd'],
            'train.py',
            ['cfg.py', '--work-dir=wd', '--launcher=slurm'],
        ),
        (
            'slurm_train.sh',
            ['part', 'job', 'cfg.py'],
            'train.py',
            ['cfg.py', '--launcher=slurm'],
        ),  # WORK_DIR is optional
        (
            'slurm_test.sh',
            ['part', 'job', 'cfg.py', 'ckpt.pth'],
            'test.py',
            ['cfg.py', 'ckpt.pth', '--launcher=slurm'],
        ),
    ],
)
def test_slurm_scripts_arguments(tmp_path, script, positional, tool, expected_tail):
    argv = _launch(
        tmp_path,
        'srun',
        script,
        positional + ['--cfg-options', 'a=1'],
        GPUS='16',
        GPUS_PER_NODE='8',
        CPUS_PER_TASK='4',
        SRUN_ARGS='--quotatype=auto',
    )
    assert argv[:10] == [
        '-p',
        'part',
        '--job-name=job',
        '--gres=gpu:8',
        '--ntasks=16',
        '--ntasks-per-node=8',
        '--cpus-per-task=4',
        '--kill-on-bad-exit=1',
        '--quotatype=auto',
        'python',
    ]
    assert argv[10] == '-u' and Path(argv[11]).resolve() == TOOLS / tool
    assert argv[12:] == expected_tail + ['--cfg-options', 'a=1']
