"""What every benchmark here measures the same way: runners timed in one process, interleaved
(each repeat runs every runner once, the order rotated), ratios against a baseline taken per
repeat, min / median / max of those ratios, threads stated, peak memory beside the speed.

Run a benchmark as a script from the repository root (`python bench/bench_engine.py`); its
own folder is then on the import path, so `from harness import …` needs no setup.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `examples` and `tests` of the checkout, for the scripts that use them
    sys.path.insert(1, str(ROOT))


def timed(fn: Callable, *args) -> float:
    """Seconds of one call."""
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def interleaved(runners: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per repeat of every runner: in each repeat every runner once, the order rotated
    by one each repeat, so a slow spell of the machine is shared rather than charged to one."""
    names = list(runners)
    out: dict[str, list[float]] = {n: [] for n in names}
    for i in range(repeats):
        for n in names[i % len(names) :] + names[: i % len(names)]:
            out[n].append(timed(runners[n]))
    return out


def ratios(times: dict[str, list[float]], baseline: str) -> dict[str, list[float]]:
    """Per repeat, baseline time / runner time (> 1: faster than the baseline)."""
    return {n: [b / t for b, t in zip(times[baseline], ts)] for n, ts in times.items()}


def spread(xs, digits: int = 2) -> str:
    """'min / median / max'."""
    return f"{min(xs):.{digits}f} / {statistics.median(xs):.{digits}f} / {max(xs):.{digits}f}"


def threads_line() -> str:
    """The thread settings a table was measured with."""
    import torch

    n, inter = torch.get_num_threads(), torch.get_num_interop_threads()
    return f"torch threads {n} (interop {inter}), torch {torch.__version__}"


def rss_mb(field: str = "VmHWM") -> float:
    """A memory field of this process from /proc/self/status, in MB (VmRSS now, VmHWM peak)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    """Give freed heap pages back (so a runner cannot hide its working set in memory an earlier
    runner freed), then start the resident high-water mark from the current size."""
    ctypes.CDLL(None).malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # not Linux, or not allowed: the peak then counts from the process start
        pass


def recording(runners: dict[str, Callable[[], object]], results: dict, peaks: dict) -> dict[str, Callable[[], None]]:
    """Each runner wrapped for `interleaved`: its last result into `results` and its peak
    resident memory beyond its start (MB, `reset_peak`) into `peaks`, under its name."""

    def wrap(name: str, fn: Callable[[], object]) -> Callable[[], None]:
        def go() -> None:
            reset_peak()
            base = rss_mb("VmRSS")
            results[name] = fn()
            peaks[name] = rss_mb("VmHWM") - base

        return go

    return {name: wrap(name, fn) for name, fn in runners.items()}


def _child(q, fn, args, threads):
    import torch

    torch.set_num_threads(threads)
    fn(*args)
    q.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def peak_mb_alone(fn: Callable, *args, threads: int = 1) -> float:
    """Max RSS (MB) of `fn(*args)` run alone in a fresh process (spawned: nothing inherited)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q, fn, args, threads))
    p.start()
    mb = q.get()
    p.join()
    return mb


def one_batch(cfg, replicas: int):
    """`cfg` (a RunConfig) as one sweep batch: `replicas` seeds at its first η, A = 70, T = 5000,
    one thread, parameters saved and the store flushed every 1,000 steps."""
    from dataclasses import replace

    from landscape.config.run import Replica

    rows = tuple(Replica(s, cfg.etas[0], 70.0, 5000) for s in range(replicas))
    return replace(cfg, replica_table=rows, threads=1, save_params_every=1000, chunk_steps=1000)


def record_afresh(cfg, out: Path) -> None:
    """Record `cfg` into `out`, replacing what a previous repeat left there."""
    import shutil

    from landscape.recorders.record import record

    shutil.rmtree(out, ignore_errors=True)
    record(cfg, out)


def process(cmd: list[str], env: dict | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak resident MB) of one command in a fresh process, from wait4: the
    child's own peak and the CPU of it and its waited-for children (a sweep's workers). A
    failing command stops the benchmark with its last stderr."""
    import os
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read()[-500:] if proc.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024  # Linux: ru_maxrss in KiB


class Table:
    """A benchmark's table as docs/performance.md shows it: the header, the formatted rows, the
    raw numbers behind each row (per-repeat seconds, ratios, peaks), the command and the
    machine. `save` writes it as JSON; `bench/tables.py` puts the JSON's table into the docs,
    so a number there is one a run wrote, not one typed in."""

    def __init__(self, name: str, columns: list[str], note: str = ""):
        import platform

        self.name, self.columns, self.note = name, columns, note
        self.rows: list[list[str]] = []
        self.raw: list[dict] = []
        self.command = "python " + " ".join(sys.argv)
        self.machine = f"{platform.processor() or platform.machine()}; {threads_line()}"
        self.date = time.strftime("%Y-%m-%d")

    def add(self, cells: list[str], **raw) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{self.name}: a row of {len(cells)} cells for {len(self.columns)} columns")
        self.rows.append([str(c) for c in cells])
        self.raw.append(raw)

    def save(self, path: str | Path) -> Path:
        import json

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        keys = ("name", "columns", "rows", "raw", "note", "command", "machine", "date")
        path.write_text(json.dumps({k: getattr(self, k) for k in keys}, indent=1, ensure_ascii=False) + "\n")
        return path
