"""pera_official_to_mm reads a big released training checkpoint in bounded memory.

A checkpoint in the released key layout (student, teacher, DINO and pixel heads,
mask token, loss centre, plus AdamW state of the student) of several hundred MB
is generated in a subprocess, then converted in a fresh subprocess per ``--keep``
mode. The converter is imported first (``import torch`` alone is ~0.5 GB), then
the peak RSS is reset by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0
sets VmHWM back to the current RSS) and the rise of VmHWM over the RSS at that
point is what the conversion cost. Where clear_refs cannot be written (or has
no effect) a thread samples VmRSS every millisecond instead. Memory-mapped pages
of the source count in RSS once read, so the bound is a real bound on what was
read, not only on what was allocated.

Run as a script, this file is the two subprocess sides: ``generate PATH`` and
``measure TOOL ARGS...``.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

WIDTH, DEPTH, HIDDEN, BOTTLENECK, PROTOTYPES = 384, 12, 2048, 256, 32768
MB = 2**20
#: the generated file is about this big (checked after writing)
EXPECTED_FILE_BYTES = 620 * MB
TOOL = Path(__file__).resolve().parents[2] / 'tools/model_converters/pera_official_to_mm.py'


# ------------------------------------------------------------ subprocess sides
def _vit(prefix, g):
    import torch

    C, sd = WIDTH, {}
    sd[prefix + 'cls_token'] = torch.randn(1, 1, C, generator=g)
    sd[prefix + 'pos_embed'] = torch.randn(1, 1 + 28 * 28, C, generator=g)
    sd[prefix + 'patch_embed.proj.weight'] = torch.randn(C, 3, 16, 16, generator=g)
    sd[prefix + 'patch_embed.proj.bias'] = torch.randn(C, generator=g)
    for i in range(DEPTH):
        b = f'{prefix}blocks.{i}.'
        for name, shape in (
            ('norm1', (C,)),
            ('attn.qkv', (3 * C, C)),
            ('attn.proj', (C, C)),
            ('norm2', (C,)),
            ('mlp.fc1', (4 * C, C)),
            ('mlp.fc2', (C, 4 * C)),
        ):
            sd[b + name + '.weight'] = torch.randn(*shape, generator=g)
            sd[b + name + '.bias'] = torch.randn(shape[0], generator=g)
    sd[prefix + 'norm.weight'] = torch.randn(C, generator=g)
    sd[prefix + 'norm.bias'] = torch.randn(C, generator=g)
    return sd


def _head(prefix, out, g):
    import torch

    sd = {}
    for i, (o, n) in enumerate(((HIDDEN, WIDTH), (HIDDEN, HIDDEN), (BOTTLENECK, HIDDEN))):
        sd[f'{prefix}mlp.{2 * i}.weight'] = torch.randn(o, n, generator=g)
        sd[f'{prefix}mlp.{2 * i}.bias'] = torch.randn(o, generator=g)
    return sd, {
        'last_layer.weight_g': torch.ones(out, 1),
        'last_layer.weight_v': torch.randn(out, BOTTLENECK, generator=g),
    }


def generate(path):
    """The released layout: ``{'model': ..., 'optimizer': ..., 'iteration': ...}``."""
    import torch

    g = torch.Generator().manual_seed(0)
    model = {}
    for part in ('student', 'teacher'):
        model.update(_vit(f'{part}.backbone.', g))
        mlp, last = _head(f'{part}.cls_head.', PROTOTYPES, g)
        model.update(mlp)
        model.update({f'{part}.cls_head.{k}': v for k, v in last.items()})
    mlp, last = _head('pred_head.mlp0.', 16 * 16 * 3, g)
    model.update(mlp)
    model.update({f'pred_head.{k}': v for k, v in last.items()})
    model['s_mask_token'] = torch.randn(1, 1, WIDTH, generator=g)
    model['dino_loss.center'] = torch.randn(1, PROTOTYPES, generator=g)
    trained = [k for k in model if not k.startswith(('teacher.', 'dino_loss.'))]
    state = {
        i: {
            'step': torch.tensor(1000.0),
            'exp_avg': torch.randn(model[k].shape, generator=g) * 1e-3,
            'exp_avg_sq': torch.rand(model[k].shape, generator=g) * 1e-6,
        }
        for i, k in enumerate(trained)
    }
    groups = [
        dict(
            lr=1e-3,
            betas=(0.9, 0.999),
            eps=2e-5,
            weight_decay=0.04,
            params=list(range(len(trained))),
        )
    ]
    torch.save(
        {'model': model, 'optimizer': {'state': state, 'param_groups': groups}, 'iteration': 5000},
        path,
    )


def _status_bytes(field):
    text = Path('/proc/self/status').read_text()
    return int(re.search(rf'^{field}:\s+(\d+) kB', text, re.M).group(1)) * 1024


def measure(tool_path, argv):
    """Import the converter, reset the peak, convert, print the peak rise (JSON)."""
    import gc
    import importlib.util

    import tqdm  # noqa: F401  (imported lazily by the converter's writer)

    spec = importlib.util.spec_from_file_location('converter_under_test', tool_path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    gc.collect()
    method = 'clear_refs'
    try:
        Path('/proc/self/clear_refs').write_text('5')
    except OSError:
        method = 'sampling'
    base = _status_bytes('VmRSS')
    if method == 'clear_refs' and _status_bytes('VmHWM') > base + MB:
        method = 'sampling'  # the reset had no effect here
    peak, stop = [base], threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _status_bytes('VmRSS'))
            stop.wait(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    if method == 'sampling':
        sampler.start()
    tool.main(argv)
    if method == 'sampling':
        stop.set()
        sampler.join()
        top = peak[0]
    else:
        top = _status_bytes('VmHWM')
    print(json.dumps(dict(method=method, base=base, peak=top, rise=top - base)))


# ------------------------------------------------------------------- the tests
@pytest.fixture(scope='module')
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp('released')
    free = shutil.disk_usage(root).free
    if free < 2 * EXPECTED_FILE_BYTES:
        pytest.skip(
            f'needs {2 * EXPECTED_FILE_BYTES / MB:.0f} MB free disk under {root} for the '
            f'generated checkpoint and its conversion; {free / MB:.0f} MB free'
        )
    path = root / 'released_train.pth'
    subprocess.run(
        [sys.executable, __file__, 'generate', str(path)],
        check=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )
    size = path.stat().st_size
    assert 0.8 * EXPECTED_FILE_BYTES < size < 1.2 * EXPECTED_FILE_BYTES, size
    yield path
    path.unlink()  # pytest keeps recent temp folders; do not leave 600 MB behind


@pytest.mark.parametrize(
    'keep, num_keys', [('teacher-backbone', 150), ('teacher', 158), ('all', 326)]
)
def test_peak_rss_rise_is_bounded_by_the_kept_bytes(released, tmp_path, keep, num_keys):
    import torch

    dst = tmp_path / f'{keep}.pth'
    proc = subprocess.run(
        [sys.executable, __file__, 'measure', str(TOOL), str(released), str(dst), '--keep', keep],
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])

    out = torch.load(dst, map_location='cpu', weights_only=True, mmap=True)
    weights = out['state_dict']
    assert out['meta']['keep'] == keep
    assert len(weights) == num_keys
    prefix = {'teacher-backbone': 'teacher.backbone.', 'teacher': 'teacher.', 'all': ''}[keep]
    assert all(k.startswith(prefix) for k in weights)
    kept = sum(v.nbytes for v in weights.values())
    source = torch.load(released, map_location='cpu', weights_only=True, mmap=True)['model']
    for key in ('teacher.backbone.blocks.7.mlp.fc1.weight', 'teacher.backbone.pos_embed'):
        assert torch.equal(weights[key], source[key])
    if keep != 'teacher-backbone':
        assert torch.equal(
            weights['teacher.projector.last_layer.weight_v'],
            source['teacher.cls_head.last_layer.weight_v'],
        )

    file_size = released.stat().st_size
    rise = result['rise']
    print(
        f'--keep {keep}: file {file_size / MB:.0f} MB, kept {kept / MB:.1f} MB, '
        f'peak RSS rise {rise / MB:.1f} MB ({result["method"]})'
    )
    assert rise <= 1.2 * kept + 64 * MB, (rise / MB, kept / MB)
    if keep != 'all':  # 'all' keeps half the file: the model without optimizer state
        assert rise <= 0.5 * file_size, (rise / MB, file_size / MB)
    assert rise >= 0.9 * kept  # the kept bytes really were read (the measure is live)
    del out, weights, source
    dst.unlink()


if __name__ == '__main__':
    if sys.argv[1] == 'generate':
        generate(sys.argv[2])
    elif sys.argv[1] == 'measure':
        measure(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(f'unknown mode {sys.argv[1]!r}')
