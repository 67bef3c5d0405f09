"""Peak memory of a recording: this tree against a baseline revision, in one process tree.

Each runner is `landscape record --seeds 64 --steps 1000` (the issue's case: a default
64-replica sweep batch, the reference network) in a fresh child process; the peak is the
child's maximum resident set (getrusage). Runners alternate (baseline, this tree, …) for
`--repeats` rounds from the same start (`harness.interleaved`, the order rotated). The
baseline is checked out with `git worktree`.

    python bench/bench_memory.py --baseline HEAD~1 --repeats 1 --threads 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import interleaved, process, spread

ROOT = Path(__file__).resolve().parents[1]


def command(src: Path, out: Path, args: list[str], threads: int) -> tuple[list[str], dict]:
    """One recording with the package at `src`, in a fresh interpreter (its own peak)."""
    code = (
        "import os, sys, torch; torch.set_num_threads(int(os.environ['THREADS'])); "
        "from landscape.app.cli import main; sys.argv = ['landscape'] + sys.argv[1:]; main()"
    )
    env = {**os.environ, "PYTHONPATH": str(src), "THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    return [sys.executable, "-c", code, "record", *args, "--out", str(out), "-q"], env


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
        res: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "this tree": []}

        def runner(name: str, src: Path):
            def go():
                out = Path(tmp) / f"{name.replace(' ', '_')}{len(res[name])}.zarr"
                res[name].append(process(*command(src, out, args, a.threads)))
                print(f"{name:10s} peak RSS {res[name][-1][2] / 1024:6.2f} GB, {res[name][-1][0]:6.1f} s", flush=True)

            return go

        try:
            interleaved({"baseline": runner("baseline", base), "this tree": runner("this tree", ROOT)}, a.repeats)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], capture_output=True)
    b = [r[2] for r in res["baseline"]]
    t = [r[2] for r in res["this tree"]]
    print(f"# record {' '.join(args)}, {a.threads} thread(s) a runner, {a.repeats} round(s); baseline {a.baseline}")
    print(
        f"peak RSS baseline / this tree (per round): {spread([x / y for x, y in zip(b, t)])}; "
        f"this tree {min(t) / 1024:.2f}–{max(t) / 1024:.2f} GB"
    )


if __name__ == "__main__":
    main()
