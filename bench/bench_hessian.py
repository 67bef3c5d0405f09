"""What the spectra cost a recording: steps with the recorder's default spectrum sampling
against the same steps without spectra, for R = 1 … 4096 replicas.

Reference problem (spiral, 300 points, width 100, float64, DCE, A = 70, T = 5000, η = 1),
started from θ after 200 steps. "With spectra" takes the top-2 eigenpairs where a default
recording does (the pair t, t + 1 every 50 steps), with the block solver warm-started from
its previous block exactly as recorders/record.py does. Both runners are timed in this one
process, interleaved repeat by repeat from the same θ (`harness.interleaved`), so each repeat
gives a ratio (Hessian cost = time with / time without); min / median / max over repeats are
printed, with each runner's peak resident memory beyond its start (`harness.recording`) and
the Hessian-vector products per solve.

    python bench/bench_hessian.py [--replicas 1 64 4096] [--repeats 3] [--threads 2] [--fused --eval-every 25]
"""

from __future__ import annotations

import argparse
import platform
import statistics
from dataclasses import replace
from functools import partial

import torch
from harness import interleaved, recording, spread, threads_line

from landscape.config.run import RunConfig
from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.machine.perf import keep_freed_memory
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec

A, T, ETA = 70.0, 5000, 1.0


def run(eng, theta, t0, steps, sites, warm, eval_every=1):
    """`steps` steps from t0; spectra at `sites` (a set) warm-started from `warm`; the steps
    between two spectra or validation steps in one call, as the recorder cuts them."""
    products, solves = 0, 0
    G = eng.gamma(list(range(t0, t0 + steps)))
    seeds = list(range(theta.shape[0]))
    cuts = sorted(sites | {s for s in range(t0, t0 + steps) if (s - t0) % eval_every == 0} | {t0 + steps})
    for s, e in zip(cuts[:-1], cuts[1:]):
        if s in sites:
            res = top_k(eng, theta, s, 2, v0=warm, tol=1e-3, salt=s, seeds=seeds, oversample=RunConfig().eig_oversample)
            warm = res.block
            products += int(res.products.sum())
            solves += 1
        theta, _ = eng.steps(theta, s, G[s - t0 : e - t0], (s - t0) % eval_every == 0)
    float(theta.sum())  # waits for the device
    return products / max(solves * theta.shape[0], 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 64, 4096])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--fused", action="store_true", help="the fused C++ step and HVP (`record --fused`)")
    ap.add_argument("--eval-every", type=int, default=1, help="validation every this many steps (`--eval-every`)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    data = spiral_dataset(100, seed=0, val_seed=1)
    spec = MLPSpec(2, 100, 3)
    cfg = RunConfig()  # the recorder's defaults: pairs (t, t + 1) every 50 steps
    where = (
        torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    )
    print(
        f"# {where}, {threads_line()}, "
        f"float64; spectra top-2 at (t, t+1) every {cfg.hessian_every} steps, tol {cfg.eig_tol}, "
        f"oversample {cfg.eig_oversample}; {'fused' if args.fused else 'eager'} engine, validation every "
        f"{args.eval_every} steps"
    )
    print(
        "| R | steps | s without | s with | Hessian cost min / median / max | HVPs per solve | "
        "peak RSS beyond start without / with (MB) |"
    )
    print("|---:|---:|---:|---:|---|---:|---|")
    for R in args.replicas:
        eng = MLPEngine(
            spec, data, "dce", [ETA] * R, [A] * R, [T] * R, device=args.device, step="fused" if args.fused else "eager"
        )
        theta = eng.advance(spec.init(range(R), device=args.device), 0, 200)
        gpu = eng.device.type == "cuda"
        steps = 500 if R <= 64 or gpu else 50 if R >= 1024 else 200
        t0 = 250  # a Hessian site: the runs start with a warm pair, as mid-recording
        warm = top_k(eng, theta, 200, 2, tol=1e-3, salt=200).block
        theta = eng.advance(theta, 200, t0)
        sites = set(replace(cfg, steps=t0 + steps).hessian_steps(t0, t0 + steps).tolist())
        results: dict = {}
        peaks: dict = {}
        runners = {
            "without": partial(run, eng, theta, t0, steps, set(), warm, args.eval_every),
            "with": partial(run, eng, theta, t0, steps, sites, warm, args.eval_every),
        }
        times = interleaved(recording(runners, results, peaks), args.repeats)
        cost = [w / wo for w, wo in zip(times["with"], times["without"])]  # per repeat
        mem = f"{peaks['without']:,.0f} / {peaks['with']:,.0f}"
        if gpu:  # device memory instead of host memory
            mem = f"{torch.cuda.max_memory_allocated() / 2**20:,.0f} (device)"
        print(
            f"| {R} | {steps} | {statistics.median(times['without']):.2f} | {statistics.median(times['with']):.2f} "
            f"| {spread(cost)}× | {results['with']:.1f} | {mem} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
