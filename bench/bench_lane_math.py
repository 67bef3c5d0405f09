"""The fused step with glibc's vector math library (libmvec: exp, log, tanh a vector at a time)
against the same step built with the scalar functions, in one process.

Both builds of `landscape/engines/fused_step.cpp` train the same replicas from the same θ0 and Γ(t);
they alternate in every repeat; the ratio (scalar time ÷ vector time) is taken per repeat.
The step's work per point is the hidden layer (∝ width) plus the loss end (3 `exp` and a `log`
for the softmax losses) and, with tanh, a `tanh` per hidden unit: the vector functions matter
most at small widths and for tanh networks. Peak memory is the process's resident high-water
mark after each runner (the step stores nothing of size width × P).

    python bench/bench_lane_math.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from harness import reset_peak, rss_mb

from landscape.engines import fused
from landscape.engines.mlp import MLPEngine  # noqa: E402
from landscape.problem.data import spiral_dataset  # noqa: E402
from landscape.problem.mlp import MLPSpec  # noqa: E402


def engine(width: int, loss: str, act: str, eta: float, R: int, vector: bool) -> MLPEngine:
    real = fused.vector_math
    fused.vector_math = (lambda: False) if not vector else real  # type: ignore[assignment]
    try:
        data = spiral_dataset(100, seed=0, val_seed=1)
        return MLPEngine(
            MLPSpec(2, width, 3, activation=act), data, loss, [eta] * R, [70.0] * R, [5000] * R, step="fused"
        )
    finally:
        fused.vector_math = real  # type: ignore[assignment]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16])
    ap.add_argument(
        "--cases",
        nargs="+",
        default=["dce/relu/1", "dce/tanh/1", "dmse1/tanh/0.05"],
        help="loss/activation/η (A = 70, T = 5000: the recorder's defaults)",
    )
    ap.add_argument("--work", type=float, default=5e8, help="flops per runner per repeat")
    ap.add_argument("--max-steps", type=int, default=2000, help="at most this many steps (a run's early phase)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not fused.vector_math():
        print("# no libmvec on this machine: both builds would be the scalar one")
        return
    print(f"# 1 thread, float64, 300 points, segments of 25 steps, {args.repeats} repeats; ratio per repeat")
    print("| loss / activation | width | R | steps | scalar run-steps/s | libmvec run-steps/s |"
          " scalar ÷ libmvec time (min / median / max) | max Δθ (θ finite) | the row's peak RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        loss, act, eta = case.split("/")
        for width in args.widths:
            for R in args.replicas:
                steps = min(args.max_steps, max(25, int(args.work / (27 * width * 300 * R)) // 25 * 25))
                runners = {v: engine(width, loss, act, float(eta), R, v) for v in (False, True)}
                theta0 = runners[True].spec.init(range(R))
                G = runners[True].gamma(list(range(steps)))
                times: dict[bool, list[float]] = {False: [], True: []}
                final = {}
                reset_peak()
                for _ in range(args.repeats):
                    for v, eng in runners.items():
                        theta = theta0
                        t0 = time.perf_counter()
                        for s in range(0, steps, 25):
                            theta, _ = eng.steps(theta, s, G[s : s + 25], s % 25 == 0)
                        times[v].append(time.perf_counter() - t0)
                        final[v] = theta
                ratios = [a / b for a, b in zip(times[False], times[True])]
                rate = {v: R * steps / statistics.median(ts) for v, ts in times.items()}
                dtheta = (final[False] - final[True]).abs().max().item()
                finite = bool(final[True].isfinite().all() and final[False].isfinite().all())
                print(
                    f"| {case} | {width} | {R} | {steps} | {rate[False]:,.0f} | {rate[True]:,.0f} | "
                    f"{min(ratios):.2f} / **{statistics.median(ratios):.2f}** / {max(ratios):.2f} | "
                    f"{dtheta:.0e} ({'yes' if finite else 'no'}) | {rss_mb('VmHWM'):.0f} |"
                )


if __name__ == "__main__":
    main()
