"""What `record --lyapunov K` costs beside the recording without it.

Runners, all in this one process, one thread, the same configuration (the spiral, DCE,
A = 70, T = 5000, the fused step, R replicas of one η), interleaved in every repeat
(`harness.interleaved`), each a whole recording into a fresh store (`harness.record_afresh`):

- `steps`: the steps with one spectrum (at step 0 and 1): the training alone;
- `steps+lyap K`: the same with K tangent vectors through every step;
- `recording`: the default recording (top-2 every 50 steps, pairs t, t + 1);
- `recording+lyap K`: the default recording with K tangent vectors.

Ratio = the runner's time ÷ `steps`' per repeat (> 1: slower than the training alone). Beside
it what the arithmetic costs: one batched Hessian-vector product of K vectors against one step,
timed on the same θ (the tangent map of a step is that product and a QR).

    python bench/bench_lyapunov.py --replicas 64 --width 100 --steps 1000 --k 2 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from harness import interleaved, one_batch, ratios, record_afresh, recording, spread, threads_line

from landscape.config.run import RunConfig
from landscape.machine.perf import keep_freed_memory
from landscape.recorders.record import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--k", type=int, default=2)
    ap.add_argument("--eta", type=float, default=0.05)
    ap.add_argument("--step", default="fused", choices=("fused", "eager"))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    base = one_batch(RunConfig(loss="dce", etas=(a.eta,), width=a.width, steps=a.steps, step=a.step), a.replicas)
    sparse = replace(base, hessian_every=a.steps, save_params_every=a.steps, chunk_steps=a.steps)
    k = a.k
    cfgs = {
        "steps": sparse,
        f"steps+lyap {k}": replace(sparse, lyapunov=k),
        "recording": replace(base, hessian_every=50),
        f"recording+lyap {k}": replace(base, hessian_every=50, lyapunov=k),
    }
    tmp = Path(tempfile.mkdtemp())
    results: dict = {}
    peaks: dict = {}
    runners = recording({n: (lambda c=c, n=n: record_afresh(c, tmp / f"{len(n)}.zarr")) for n, c in cfgs.items()},
                        results, peaks)  # fmt: skip
    times = interleaved(runners, a.repeats)
    rel = ratios(times, "steps")
    print(f"# bench_lyapunov: {a.step} step, R = {a.replicas}, width {a.width}, {a.steps} steps, K = {k}; "
          f"{threads_line()}")  # fmt: skip
    print(f"{'runner':<20} {'median s':>9} {'run-steps/s':>12} {'× steps (min / med / max)':>28} {'peak MB':>8}")
    for n in cfgs:
        med = statistics.median(times[n])
        inv = [1 / r for r in rel[n]]
        print(f"{n:<20} {med:>9.3f} {a.replicas * a.steps / med:>12.0f} {spread(inv):>28} {peaks[n]:>8.1f}")

    # the floor: the tangent map's K Hessian-vector products against one step, on the same θ
    eng = prepare(cfgs["steps"]).engine
    theta = eng.init(list(range(a.replicas)))
    G = eng.gamma([0])
    V = torch.randn(a.replicas, k, eng.num_params, dtype=theta.dtype)
    rows = torch.arange(a.replicas)
    op = lambda: eng.hvp_block(theta, 0, G[0])(V, rows)  # noqa: E731
    step = lambda: eng.steps(theta, 0, G, False, None)  # noqa: E731
    t = interleaved({"step": step, f"hvp {k}": op}, max(5, a.repeats * 5))
    cost = [h / s for h, s in zip(t[f"hvp {k}"], t["step"])]
    print(f"one batched HVP of {k} vectors ÷ one step, each timed alone (min / med / max): {spread(cost)}")


if __name__ == "__main__":
    main()
