"""Thread policy for replicas on a CPU: intra-op threads against one process per core,
on a quiet machine and on one where another process keeps a core busy.

Policies (same replicas, same steps, the reference network):
- `1 process × 2 threads`: `landscape record --threads 2 --seeds R` (torch's default here);
- `1 process × 1 thread`: `landscape record --threads 1 --seeds R`;
- `2 processes × 1 thread`: `landscape sweep --workers 2 --batch-size R/2` (one batch per core).

Each runner is a fresh `landscape` process tree; wall time, CPU time (user + system of the
children) and peak resident memory (the largest child's) are read from wait4. The load is a
process spinning on one core, started before and stopped after each loaded runner. Runners
alternate in every repeat, from the same start.

    python bench/bench_threads.py --seeds 16 --steps 1000 --repeats 3
    python bench/bench_threads.py --seeds 16 --steps 20000 --record-args "--fused --eval-every 25"
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LANDSCAPE = [sys.executable, "-m", "landscape"]


def policies(seeds: int, steps: int, out: Path, extra: list[str]) -> dict[str, list[str]]:
    common = ["--seeds", str(seeds), "--steps", str(steps), "-q", *extra]
    return {
        "1 process × 2 threads": [*LANDSCAPE, "record", "--threads", "2", *common, "--out", str(out / "a.zarr")],
        "1 process × 1 thread": [*LANDSCAPE, "record", "--threads", "1", *common, "--out", str(out / "b.zarr")],
        "2 processes × 1 thread": [
            *LANDSCAPE,
            "sweep",
            "--workers",
            "2",
            "--batch-size",
            str(max(1, seeds // 2)),
            *common,
            "--out",
            str(out / "c.zarr"),
        ],
    }


def measure(cmd: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS GB) of one command and its children."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read()[-400:]}")
    # wait4 gives the direct child; its own children (sweep workers) are in RUSAGE_CHILDREN of it,
    # which wait4 includes for waited-for grandchildren
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--record-args", default="", help='more flags for every runner, e.g. "--fused --eval-every 25"')
    a = ap.parse_args()
    res: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for load in ("quiet", "one core busy"):
                where = Path(tmp) / f"{r}{load[0]}"
                where.mkdir()
                for name, cmd in policies(a.seeds, a.steps, where, shlex.split(a.record_args)).items():
                    spin = None
                    if load != "quiet":
                        spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        time.sleep(0.5)
                    try:
                        res.setdefault((load, name), []).append(measure(cmd))
                    finally:
                        if spin is not None:
                            spin.kill()
                            spin.wait()
                    w, c, m = res[(load, name)][-1]
                    print(f"# repeat {r}, {load}, {name}: {w:.1f} s wall, {c:.1f} s CPU, {m:.2f} GB", flush=True)
    print(
        f"\n`record`/`sweep` --seeds {a.seeds} --steps {a.steps} {a.record_args}, {a.repeats} repeats "
        "(min / median / max)\n"
    )
    print("| machine | policy | wall s | CPU s | peak RSS GB | wall ÷ best policy's (per repeat) |")
    print("|---|---|---|---|---|---|")
    for load in ("quiet", "one core busy"):
        names = [n for (ld, n) in res if ld == load]
        best = [min(res[(load, n)][i][0] for n in names) for i in range(a.repeats)]
        for n in names:
            rows = res[(load, n)]
            fmt = lambda xs: f"{min(xs):.1f} / {statistics.median(xs):.1f} / {max(xs):.1f}"
            ratio = sorted(rows[i][0] / best[i] for i in range(a.repeats))
            print(
                f"| {load} | {n} | {fmt([x[0] for x in rows])} | {fmt([x[1] for x in rows])} | "
                f"{max(x[2] for x in rows):.2f} | {ratio[0]:.2f} / {statistics.median(ratio):.2f} / {ratio[-1]:.2f} |"
            )


if __name__ == "__main__":
    main()
