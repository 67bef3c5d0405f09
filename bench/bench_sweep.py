"""Sweep-scale throughput: run-steps per second of the batched engine for R = 1 … 4096
replicas of the reference problem, against the plain per-run PyTorch loop measured
in the same process (bench_engine.plain_loop).

The spectrum is timed separately (warm-started from the previous block, as in a
recording) and charged as the recorder's default sampling does: a pair of spectra
(t, t + 1) every 50 steps, rate = R / (t_step + 2 t_spectrum / 50).

    python bench/bench_sweep.py [--dtype float64 float32] [--replicas 1 16 64 256 1024 4096] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
from bench_engine import ETA, EVERY, A, T, plain_loop  # noqa: E402

from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine  # noqa: E402
from landscape.machine.perf import keep_freed_memory  # noqa: E402
from landscape.problem.data import spiral_dataset  # noqa: E402
from landscape.problem.mlp import MLPSpec  # noqa: E402


def engine_rates(data, R, dtype, device):
    spec = MLPSpec(2, 100, 3)
    eng = MLPEngine(spec, data, "dce", [ETA] * R, [A] * R, [T] * R, dtype=dtype, device=device)
    theta = spec.init(range(R), dtype, device)
    G = eng.gamma(0)
    for t in range(2):
        theta, _ = eng.step(theta, t, G)
    steps = max(3, min(60, 6000 // R))
    sync = (lambda: torch.cuda.synchronize()) if eng.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    for t in range(steps):
        theta, _ = eng.step(theta, t, G)
    sync()
    t_step = (time.perf_counter() - t0) / steps
    res = top_k(eng, theta, steps, 2, tol=1e-3)
    theta2 = theta
    for t in range(EVERY):  # the next spectrum is 50 steps later, warm-started
        theta2, _ = eng.step(theta2, t, G)
    sync()
    t0 = time.perf_counter()
    top_k(eng, theta2, steps + EVERY, 2, v0=res.block, tol=1e-3)
    sync()
    t_spec = time.perf_counter() - t0
    return R / t_step, R / (t_step + 2 * t_spec / EVERY)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", nargs="+", default=["float64", "float32"])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 4, 16, 64, 256, 1024, 4096])
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    keep_freed_memory()
    data = spiral_dataset(100, seed=0, val_seed=1)
    print(
        f"# {args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}; width 100, P = 300; "
        f"spectra (t, t+1) every {EVERY} steps"
    )
    print("| dtype | R | run-steps/s | × plain | with Hessian | × plain (with Hessian) | Hessian cost |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for dt in args.dtype:
        dtype = getattr(torch, dt)
        n = 150
        t0 = time.perf_counter()
        plain_loop(data, n, False, dtype)
        base = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain_loop(data, n, True, dtype)
        base_h = n / (time.perf_counter() - t0)
        print(f"| {dt} | plain loop | {base:,.0f} | 1.00 | {base_h:,.0f} | 1.00 | {base / base_h:.2f}× |")
        for R in args.replicas:
            r, rh = engine_rates(data, R, dtype, args.device)
            print(
                f"| {dt} | {R} | {r:,.0f} | {r / base:.2f} | {rh:,.0f} | {rh / base_h:.2f} | {r / rh:.2f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
