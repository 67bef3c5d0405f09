"""What the spectra cost a recording: steps with the recorder's default spectrum sampling
against the same steps without spectra, for R = 1 … 4096 replicas.

Reference problem (spiral, 300 points, width 100, float64, DCE, A = 70, T = 5000, η = 1),
started from θ after 200 steps. "With spectra" takes the top-2 eigenpairs where a default
recording does (the pair t, t + 1 every 50 steps), with the block solver warm-started from
its previous block exactly as recorders/record.py does. Both runners are timed in this one
process, interleaved repeat by repeat from the same θ, so each repeat gives a ratio
(Hessian cost = time with / time without); min / median / max over repeats are printed,
with the peak resident memory seen while each runner ran (sampled every 5 ms) and the
Hessian-vector products per solve.

    python bench/bench_hessian.py [--replicas 1 64 4096] [--repeats 3] [--threads 2] [--fused --eval-every 25]
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from dataclasses import replace

import numpy as np
import torch

from landscape.config.run import RunConfig
from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.machine.perf import keep_freed_memory
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec

A, T, ETA = 70.0, 5000, 1.0


class PeakRSS:
    """Peak resident set size (bytes) of this process while the block runs."""

    def __enter__(self):
        self.peak, self._stop = 0, False
        page = os.sysconf("SC_PAGE_SIZE")

        def watch():
            while not self._stop:
                with open("/proc/self/statm") as f:
                    self.peak = max(self.peak, int(f.read().split()[1]) * page)
                time.sleep(0.005)

        self._t = threading.Thread(target=watch, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()


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
        f"# {where}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
        f"float64; spectra top-2 at (t, t+1) every {cfg.hessian_every} steps, tol {cfg.eig_tol}, "
        f"oversample {cfg.eig_oversample}; {'fused' if args.fused else 'eager'} engine, validation every "
        f"{args.eval_every} steps"
    )
    print(
        "| R | steps | s without | s with | Hessian cost min / median / max | HVPs per solve | "
        "peak RSS without / with (MB) |"
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
        ratios, tw, th, mem_w, mem_h, hvp = [], [], [], 0, 0, 0.0
        for _ in range(args.repeats):
            with PeakRSS() as m:
                a = time.perf_counter()
                run(eng, theta, t0, steps, set(), warm, args.eval_every)
                tw.append(time.perf_counter() - a)
            mem_w = max(mem_w, m.peak)
            with PeakRSS() as m:
                a = time.perf_counter()
                hvp = run(eng, theta, t0, steps, sites, warm, args.eval_every)
                th.append(time.perf_counter() - a)
            mem_h = max(mem_h, m.peak)
            if gpu:  # device memory instead of host memory
                mem_h = torch.cuda.max_memory_allocated()
            ratios.append(th[-1] / tw[-1])
        r = np.array(ratios)
        print(
            f"| {R} | {steps} | {np.median(tw):.2f} | {np.median(th):.2f} | {r.min():.2f} / {np.median(r):.2f} / "
            f"{r.max():.2f}× | {hvp:.1f} | {mem_w / 2**20:,.0f} / {mem_h / 2**20:,.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
