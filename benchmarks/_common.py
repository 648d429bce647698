# Copyright (c) pera-mm contributors. All rights reserved.
"""Helpers shared by the benchmark scripts (no torch import at module level).

Machine description, load-average gating, CPU-contention sampling, RSS
probes, least-squares fits, JSON output and plain-text tables.
"""

import datetime as _dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
RESULT_MARKER = 'BENCH_RESULT '
_PAGE = os.sysconf('SC_PAGE_SIZE')
_TICKS = os.sysconf('SC_CLK_TCK')


# ----------------------------------------------------------------- machine
def cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def cpu_flags() -> List[str]:
    """The SIMD flags that matter for GEMM throughput."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('flags'):
                have = set(line.split(':', 1)[1].split())
                wanted = ('avx2', 'fma', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile')
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def machine_info() -> dict:
    info = dict(
        hostname=platform.node(),
        cpu_model=cpu_model(),
        cpu_flags=cpu_flags(),
        logical_cpus=os.cpu_count(),
        python=platform.python_version(),
        date_utc=_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M:%S UTC'),
        command=' '.join(['python'] + sys.argv),
        loadavg_start=loadavg(),
    )
    try:
        import torch

        info.update(
            torch=torch.__version__,
            torch_threads=torch.get_num_threads(),
            cuda=torch.cuda.is_available(),
            gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        )
    except Exception as err:  # pragma: no cover - torch is a dependency
        info.update(torch=f'unavailable ({err})')
    for mod in ('mmengine', 'mmpretrain', 'numpy', 'cv2', 'PIL'):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:
            pass
    return info


# ---------------------------------------------------------------- contention
def loadavg() -> List[float]:
    try:
        return [float(x) for x in Path('/proc/loadavg').read_text().split()[:3]]
    except OSError:
        return list(os.getloadavg())


def wait_for_quiet(
    threshold: float, deadline_utc: Optional[str], poll: float = 30.0, log=print
) -> dict:
    """Block until the 1-minute load average is below ``threshold``.

    Gives up at ``deadline_utc`` ('HH:MM', today, UTC) and says so. Returns
    what happened, for the JSON record.
    """
    if threshold is None or threshold <= 0:
        return dict(waited_s=0.0, quiet=None, note='no load gate')
    start = time.time()
    deadline = None
    if deadline_utc:
        now = _dt.datetime.now(_dt.timezone.utc)
        hh, mm = (int(x) for x in deadline_utc.split(':'))
        deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
        if deadline < now - _dt.timedelta(hours=12):
            deadline += _dt.timedelta(days=1)
    while True:
        load1 = loadavg()[0]
        if load1 < threshold:
            return dict(waited_s=round(time.time() - start, 1), quiet=True, load1=load1)
        if deadline is not None and _dt.datetime.now(_dt.timezone.utc) >= deadline:
            log(
                f'[load gate] still busy (load1={load1:.2f}) at the deadline '
                f'{deadline_utc} UTC: running anyway'
            )
            return dict(
                waited_s=round(time.time() - start, 1),
                quiet=False,
                load1=load1,
                note=f'ran under load: deadline {deadline_utc} UTC reached',
            )
        log(f'[load gate] load1={load1:.2f} >= {threshold}; waiting {poll:.0f}s')
        time.sleep(poll)


class CpuSampler:
    """CPU time used by other processes while a measurement runs.

    ``foreign_cores`` = (busy jiffies of the whole machine - this process's
    and its reaped children's CPU time) / wall time: ~0 on a quiet machine, ~1
    when another job keeps one core busy. Read from /proc/stat; None where it is unavailable.
    """

    def __init__(self):
        self.t0 = self.busy0 = self.own0 = None

    @staticmethod
    def _busy():
        try:
            fields = Path('/proc/stat').read_text().splitlines()[0].split()[1:]
            vals = [int(x) for x in fields]
            idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
            return (sum(vals[:8]) - idle) / _TICKS
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _own():
        # this process + its reaped children (DataLoader workers once joined)
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def start(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), self._own()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        busy1, own1 = self._busy(), self._own()
        out = dict(
            wall_s=round(wall, 3), own_cores=round((own1 - self.own0) / wall, 3), loadavg=loadavg()
        )
        if self.busy0 is not None and busy1 is not None:
            out['foreign_cores'] = round(
                max(0.0, (busy1 - self.busy0) - (own1 - self.own0)) / wall, 3
            )
        return out


def quiet_mmengine():
    """Silence mmengine's INFO chatter (init_weights prints every parameter)."""
    import logging

    from mmengine.logging import MMLogger

    MMLogger.get_current_instance().setLevel(logging.WARNING)


# --------------------------------------------------------------------- RSS
def rss_bytes() -> int:
    """Current resident set size of this process."""
    try:
        return int(Path('/proc/self/statm').read_text().split()[1]) * _PAGE
    except OSError:
        return 0


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark (VmHWM) of this process.

    Writing 5 to /proc/self/clear_refs (Linux >= 4.0) does it; returns False
    when not permitted, and callers then fall back to ``ru_maxrss``.
    """
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """VmHWM (peak RSS since start or the last reset)."""
    try:
        for line in Path('/proc/self/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return ru_maxrss_bytes()


def ru_maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# --------------------------------------------------------------------- math
def timed(fn, repeats: int) -> float:
    """Mean seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> Dict[str, float]:
    """Least-squares y = a + b x, with R^2 and the intercept as a share of
    the largest y (how far from proportional the cost is)."""
    n = len(xs)
    if n < 2:
        return dict(slope=float('nan'), intercept=float('nan'), r2=float('nan'), n=n)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    slope = sxy / sxx if sxx else float('nan')
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for y in ys)
    ss_res = sum((y - (intercept + slope * x)) ** 2 for x, y in zip(xs, ys))
    r2 = 1 - ss_res / ss_tot if ss_tot else float('nan')
    return dict(
        slope=slope,
        intercept=intercept,
        r2=r2,
        n=n,
        intercept_share=intercept / max(ys) if max(ys) else float('nan'),
    )


# ------------------------------------------------------------------ output
def table(rows: List[Sequence], header: Sequence[str]) -> str:
    cells = [[str(h) for h in header]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ['  '.join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, '  '.join('-' * w for w in widths))
    return '\n'.join(lines)


def _fmt(c) -> str:
    if c is None:
        return '-'
    if isinstance(c, float):
        if c != c:
            return 'nan'
        a = abs(c)
        if a >= 1000:
            return f'{c:,.0f}'
        if a >= 100:
            return f'{c:.1f}'
        if a >= 1:
            return f'{c:.2f}'
        return f'{c:.3f}'
    return str(c)


def write_json(path, payload: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, default=_json_default) + '\n')


def _json_default(o):
    if hasattr(o, 'tolist'):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def emit_result(payload: dict) -> None:
    """Worker side: one machine-readable line on stdout."""
    sys.stdout.write(RESULT_MARKER + json.dumps(payload, default=_json_default) + '\n')
    sys.stdout.flush()


def parse_result(stdout: str) -> Optional[dict]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARKER):
            return json.loads(line[len(RESULT_MARKER) :])
    return None
