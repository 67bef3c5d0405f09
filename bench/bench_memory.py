"""Peak memory of a recording: this tree against a baseline revision, in one process tree.

Each runner is `landscape record --seeds 64 --steps 1000` (the issue's case: a default
64-replica sweep batch, the reference network) in a fresh child process; the peak is the
child's maximum resident set (getrusage). Runners alternate (baseline, this tree, …) for
`--repeats` rounds from the same start. The baseline is checked out with `git worktree`.

    python bench/bench_memory.py --baseline HEAD~1 --repeats 1 --threads 2
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(src: Path, out: Path, args: list[str], threads: int) -> tuple[float, float]:
    """(peak RSS in GB, wall seconds) of one recording with the package at `src`."""
    code = (
        "import os, resource, sys, torch; torch.set_num_threads(int(os.environ['THREADS'])); "
        "from landscape.app.cli import main; sys.argv = ['landscape'] + sys.argv[1:]; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(src), "THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    # a fresh interpreter per runner: wait4 gives that child's own peak
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "record", *args, "--out", str(out), "-q"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"runner at {src} failed: {proc.stderr.read()[-500:]}")
    del before
    return usage.ru_maxrss / 1e6, wall  # KiB → GB (Linux reports ru_maxrss in KiB)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="HEAD~1", help="git revision to compare with")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", default="64")
    ap.add_argument("--steps", default="1000")
    ap.add_argument("--width", default="100")
    ap.add_argument("--n-per-class", default="100", help="spiral points per class (P = 3 × this)")
    a = ap.parse_args()
    args = ["--seeds", a.seeds, "--steps", a.steps, "--width", a.width, "--n-per-class", a.n_per_class]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.baseline],
            check=True,
            capture_output=True,
        )
        try:
            rows = []
            for r in range(a.repeats):
                for name, src in (("baseline", base), ("this tree", ROOT)):
                    gb, wall = run(src, Path(tmp) / f"{name.replace(' ', '_')}{r}.zarr", args, a.threads)
                    rows.append((name, gb, wall))
                    print(f"round {r}: {name:10s} peak RSS {gb:6.2f} GB, {wall:6.1f} s", flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    b = [g for n, g, _ in rows if n == "baseline"]
    t = [g for n, g, _ in rows if n == "this tree"]
    ratios = sorted(x / y for x, y in zip(b, t))
    print(f"# record {' '.join(args)}, {a.threads} threads, {a.repeats} round(s); baseline {a.baseline}")
    print(
        f"peak RSS baseline / this tree: min {ratios[0]:.2f}, median {ratios[len(ratios) // 2]:.2f}, "
        f"max {ratios[-1]:.2f}; this tree {min(t):.2f}–{max(t):.2f} GB"
    )


if __name__ == "__main__":
    main()
