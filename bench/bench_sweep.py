"""Sweep-scale throughput: run-steps per second of the batched engine for R = 1 … 4096
replicas of the reference problem, against the plain per-run PyTorch loop measured
in the same process, interleaved with it (bench_engine.plain_loop, `harness.interleaved`).

The spectrum is timed separately (warm-started from the previous block, as in a
recording) and charged as the recorder's default sampling does: a pair of spectra
(t, t + 1) every 50 steps, rate = R / (t_step + 2 t_spectrum / 50).

    python bench/bench_sweep.py [--dtype float64 float32] [--replicas 1 16 64 256 1024 4096] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
from functools import partial

import torch
from bench_engine import ETA, EVERY, A, T, plain_loop  # noqa: E402
from harness import interleaved, recording, spread, threads_line

from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine  # noqa: E402
from landscape.machine.perf import keep_freed_memory  # noqa: E402
from landscape.problem.data import spiral_dataset  # noqa: E402
from landscape.problem.mlp import MLPSpec  # noqa: E402


def engine_runners(data, R, dtype, device):
    """Two runners of R replicas from the same θ (after two steps): `steps` steps, and one
    spectrum warm-started from the block of the spectrum EVERY steps before, as a recording
    does; and the step count."""
    spec = MLPSpec(2, 100, 3)
    eng = MLPEngine(spec, data, "dce", [ETA] * R, [A] * R, [T] * R, dtype=dtype, device=device)
    theta = spec.init(range(R), dtype, device)
    G = eng.gamma(0)
    for t in range(2):
        theta, _ = eng.step(theta, t, G)
    steps = max(3, min(60, 6000 // R))
    sync = (lambda: torch.cuda.synchronize()) if eng.device.type == "cuda" else (lambda: None)
    warm = top_k(eng, theta, steps, 2, tol=1e-3).block
    later = eng.advance(theta, 2, 2 + EVERY)  # the next spectrum is 50 steps later, warm-started

    def stepping():
        th = theta
        for t in range(steps):
            th, _ = eng.step(th, t, G)
        sync()

    def spectrum():
        top_k(eng, later, steps + EVERY, 2, v0=warm, tol=1e-3)
        sync()

    return stepping, spectrum, steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    keep_freed_memory()
    data = spiral_dataset(100, seed=0, val_seed=1)
    n = 150  # the plain loop's steps
    print(
        f"# {args.device}, {threads_line()}; width 100, P = 300; spectra (t, t+1) every {EVERY} steps; "
        f"{args.repeats} repeats, the four runners interleaved; ratios per repeat, min / median / max"
    )
    print(
        "| dtype | R | run-steps/s | × plain | with Hessian | × plain (with Hessian) | Hessian cost "
        "| peak MB beyond start, steps / spectrum |"
    )
    print("|---|---:|---:|---|---:|---|---:|---|")
    for dt in args.dtype:
        dtype = getattr(torch, dt)
        for R in args.replicas:
            stepping, spectrum, steps = engine_runners(data, R, dtype, args.device)
            peaks: dict = {}
            ts = interleaved(
                recording(
                    {
                        "plain": partial(plain_loop, data, n, False, dtype),
                        "plain with Hessian": partial(plain_loop, data, n, True, dtype),
                        "steps": stepping,
                        "spectrum": spectrum,
                    },
                    {},
                    peaks,
                ),
                args.repeats,
            )
            rate = [R * steps / t for t in ts["steps"]]
            rate_h = [R / (t / steps + 2 * s / EVERY) for t, s in zip(ts["steps"], ts["spectrum"])]
            over = [r / (n / p) for r, p in zip(rate, ts["plain"])]
            over_h = [r / (n / p) for r, p in zip(rate_h, ts["plain with Hessian"])]
            cost = statistics.median(rate) / statistics.median(rate_h)
            print(
                f"| {dt} | {R} | {statistics.median(rate):,.0f} | {spread(over)} | {statistics.median(rate_h):,.0f} "
                f"| {spread(over_h)} | {cost:.2f}× | {peaks['steps']:,.0f} / {peaks['spectrum']:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
