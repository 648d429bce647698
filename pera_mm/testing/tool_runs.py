# Copyright (c) pera-mm contributors. All rights reserved.
"""What the end-to-end tests pass to ``tools/train.py``/``tools/test.py`` and read back."""

import json
import os
import subprocess
from pathlib import Path
from typing import List

#: the dataloaders of a train + val + test config
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def data_root_options(data_root, checkpoint=None, loaders=LOADERS) -> List[str]:
    """``--cfg-options`` entries pointing ``loaders`` at ``data_root`` (and the backbone init).

    Args:
        data_root (str | Path): dataset root of every loader in ``loaders``.
        checkpoint (str | Path, optional): PerA checkpoint for
            ``model.backbone.init_cfg.checkpoint``; left out when None.
        loaders (Sequence[str]): the dataloader fields to set.

    Returns:
        list[str]: ``key=value`` strings for ``--cfg-options``.
    """
    opts = [] if checkpoint is None else [f'model.backbone.init_cfg.checkpoint={checkpoint}']
    return opts + [f'{loader}.dataset.data_root={data_root}' for loader in loaders]


def read_scalars(work_dir) -> List[dict]:
    """The rows of the one run's ``<work_dir>/<timestamp>/vis_data/scalars.json``.

    Args:
        work_dir (str | Path): the ``--work-dir`` of exactly one run.

    Returns:
        list[dict]: one dict per logged step (train rows carry ``loss``, val rows metrics).
    """
    (path,) = Path(work_dir).glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


def run_tool(args, cwd, **env) -> subprocess.CompletedProcess:
    """Run ``args`` in a subprocess and assert it exits 0 (its output tail is the message).

    The child gets this process's environment without ``LOCAL_RANK`` (so a tool
    never believes it is one rank of a launcher), updated with ``env``.

    Args:
        args (list[str]): the command, e.g. ``[sys.executable, 'tools/train.py', cfg]``.
        cwd (str | Path): working directory.
        **env: environment variables to set, e.g. ``OMP_NUM_THREADS='1'``.

    Returns:
        subprocess.CompletedProcess: with ``stdout`` and ``stderr`` as text.
    """
    child_env = dict(os.environ)
    child_env.pop('LOCAL_RANK', None)
    child_env.update(env)
    proc = subprocess.run(args, cwd=cwd, env=child_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_latest_log(work_dir) -> str:
    """The text of the newest ``<work_dir>/<timestamp>/<timestamp>.log``."""
    logs = sorted(Path(work_dir).glob('*/*.log'))
    assert logs, f'no log in {work_dir}'
    return logs[-1].read_text()


def run_dist_train(config, work_dir, port: int, nproc: int = 2) -> subprocess.CompletedProcess:
    """``tools/dist_train.sh CONFIG nproc`` on loopback (gloo on CPU); asserts it exits 0.

    One thread per process, this checkout first on ``PYTHONPATH``.
    """
    repo = Path(__file__).resolve().parents[2]
    pythonpath = os.pathsep.join([str(repo), os.environ.get('PYTHONPATH', '')])
    args = ['bash', str(repo / 'tools/dist_train.sh'), str(config), str(nproc)]
    return run_tool(
        args + ['--work-dir', str(work_dir)],
        cwd=repo,
        PYTHONPATH=pythonpath,
        PORT=str(port),
        OMP_NUM_THREADS='1',
    )


def run_torchrun(script, port: int, nproc: int = 2) -> subprocess.CompletedProcess:
    """``python -m torch.distributed.run`` of ``script`` on loopback; asserts it exits 0."""
    import sys

    args = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc)]
    args += ['--master_addr', '127.0.0.1', '--master_port', str(port), str(script)]
    return run_tool(args, cwd=Path(script).parent, OMP_NUM_THREADS='1', MASTER_ADDR='127.0.0.1')


def aid_list_file(aid_root, path, count: int = 24):
    """A list file of ``count`` AID tiles (absolute paths, images 1-2 of each class)."""
    images = sorted((Path(aid_root) / 'AID').glob('*/*_[1-2].jpg'))[:count]
    assert len(images) == count
    Path(path).write_text(''.join(f'{p}\n' for p in images))
    return path


def train_smoke_distributed(smoke, fsdp_config, work_root, name, ann_file, fsdp, port, **hooks):
    """Two processes of ``tools/dist_train.sh`` on a smoke config and a list of images.

    With ``fsdp``, the FlexibleRunner and FSDP strategy of ``fsdp_config``; ``hooks``
    are extra ``default_hooks`` (e.g. ``checkpoint=dict(interval=1)``). Returns the
    work dir.
    """
    from mmengine.config import Config

    extra = ''
    if fsdp:
        strategy = Config.fromfile(fsdp_config).strategy.to_dict()
        extra = f"runner_type = 'FlexibleRunner'\nstrategy = {strategy!r}\n"
    hook_text = ''.join(f', {key}={value!r}' for key, value in hooks.items())
    cfg = Path(work_root) / f'{name}.py'
    cfg.write_text(f"""_base_ = [{str(smoke)!r}]
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(data_root='', ann_file={str(ann_file)!r}))
optim_wrapper = dict(use_fsdp={fsdp})
default_hooks = dict(logger=dict(interval=1){hook_text})
randomness = dict(seed=3)
{extra}""")
    work = Path(work_root) / name
    run_dist_train(cfg, work, port)
    return work
