"""Thread policy for replicas on a CPU: intra-op threads against one process per core,
on a quiet machine and on one where another process keeps a core busy.

Policies (same replicas, same steps, the reference network):
- `1 process × 2 threads`: `landscape record --threads 2 --seeds R` (torch's default here);
- `1 process × 1 thread`: `landscape record --threads 1 --seeds R`;
- `2 processes × 1 thread`: `landscape sweep --workers 2 --batch-size R/2` (one batch per core).

Each runner is a fresh `landscape` process tree; wall time, CPU time (user + system of the
children) and peak resident memory (the largest child's) are read from wait4
(`harness.process`). The load is a process spinning on one core, started before and stopped
after each loaded runner. Runners alternate in every repeat, the order rotated
(`harness.interleaved`), from the same start.

    python bench/bench_threads.py --seeds 16 --steps 1000 --repeats 3
    python bench/bench_threads.py --seeds 16 --steps 20000 --record-args "--fused --eval-every 25"
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import interleaved, process, spread

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--record-args", default="", help='more flags for every runner, e.g. "--fused --eval-every 25"')
    a = ap.parse_args()
    res: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:

        def runner(load: str, name: str):
            def go():
                rows = res.setdefault((load, name), [])
                where = Path(tmp) / f"{len(rows)}{load[0]}{name[0]}{name[-1]}"
                where.mkdir()
                cmd = policies(a.seeds, a.steps, where, shlex.split(a.record_args))[name]
                spin = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if load != "quiet" else None
                try:
                    if spin is not None:
                        time.sleep(0.5)
                    rows.append(process(cmd))
                finally:
                    if spin is not None:
                        spin.kill()
                        spin.wait()
                w, c, m = rows[-1]
                print(f"# {load}, {name}: {w:.1f} s wall, {c:.1f} s CPU, {m / 1024:.2f} GB", flush=True)

            return go

        names = list(policies(1, 1, Path(tmp), []))
        interleaved({f"{ld}|{n}": runner(ld, n) for ld in ("quiet", "one core busy") for n in names}, a.repeats)
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
            ratio = [rows[i][0] / best[i] for i in range(a.repeats)]
            print(
                f"| {load} | {n} | {spread([x[0] for x in rows], 1)} | {spread([x[1] for x in rows], 1)} | "
                f"{max(x[2] for x in rows) / 1024:.2f} | {spread(ratio)} |"
            )


if __name__ == "__main__":
    main()
