"""How well the time a sweep or `reproduce` announces before it starts matches the recording.

The announcement is `landscape.recorders.sweep.cost`: each batch at the rate its engine shows
in a short calibration (`measure_rate`). Here each case is recorded for real into a temporary
store and timed, and in the same repeat the calibration runs and predicts that recording's
seconds; a ratio recorded / predicted of 1 is a perfect forecast, > 1 an optimistic one. The
baseline beside it is a calibration of single `engine.step` calls with validation at every
step (what the forecast measured before it timed the recorder's own segments): with
`--eval-every 100` and the fused step that overstated a recording's time. Each repeat runs the
three interleaved (harness.interleaved), one thread.

    python bench/bench_estimate.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from harness import interleaved, one_batch, record_afresh, spread, threads_line

from landscape.config.run import RunConfig
from landscape.curvature.spectrum import top_k
from landscape.recorders.sweep import cost
from landscape.runs import build

CASES = {
    # Fig. 3 (b)'s batches at 3 000 000 steps, cut: fused, validation every 100, spectra every 1000
    "fused mse w400 R10 eval100": RunConfig(
        loss="mse", width=400, step="fused", eval_every=100, hessian_every=1000, steps=20000, etas=(0.075,)
    ),
    "fused dce w20 R10 eval100": RunConfig(
        loss="dce", width=20, step="fused", eval_every=100, hessian_every=1000, steps=40000, etas=(1.0,)
    ),
    # the recorder's defaults: validation every step, spectra every 50
    "fused dmse1 w100 R16 eval1": RunConfig(loss="dmse1", width=100, step="fused", steps=3000, etas=(0.5,)),
    "eager dce w100 R16 eval1": RunConfig(loss="dce", width=100, step="eager", steps=1000, etas=(1.0,)),
}
SEEDS = {"R10": 10, "R16": 16}


def per_step_rate(cfg: RunConfig, replicas: int, steps: int = 30) -> float:
    """The forecast's former calibration: single steps, validation at each, plus the spectra."""
    eng = build.engine(cfg, build.dataset(cfg))
    theta = eng.init(range(replicas))
    for t in range(3):
        theta, _ = eng.step(theta, t)
    res = top_k(eng, theta, 3, cfg.top_k, tol=cfg.eig_tol, oversample=cfg.eig_oversample)
    t0 = time.perf_counter()
    for t in range(steps):
        theta, _ = eng.step(theta, t)
    float(theta.sum())
    t_step = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    top_k(eng, theta, steps, cfg.top_k, v0=res.block, tol=cfg.eig_tol, oversample=cfg.eig_oversample)
    t_spec = time.perf_counter() - t0
    return replicas / (t_step + (2 if cfg.hessian_pairs else 1) * t_spec / cfg.hessian_every)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(threads_line())
    print("| case | run-steps | recorded s (median) | recorded / forecast | recorded / former forecast |")
    print("|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp())
    try:
        for name, cfg in CASES.items():
            b = one_batch(cfg, next(v for k, v in SEEDS.items() if k in name))
            R, work = len(b.replicas()), b.steps * len(b.replicas())
            got: dict[str, float] = {}

            def rec(b=b):
                record_afresh(b, tmp / "r.zarr")

            def now(b=b, got=got):
                got["now"] = cost([b], {}).seconds

            def before(b=b, R=R, got=got):
                got["before"] = b.steps * R / per_step_rate(b, R)

            rec()  # warm: the fused step's build, first allocations
            runs = {"record": rec, "forecast": now, "former": before}
            seconds = {k: [] for k in runs}
            for _ in range(args.repeats):
                t = interleaved(runs, 1)
                seconds["record"].append(t["record"][0])
                seconds["forecast"].append(got["now"])
                seconds["former"].append(got["before"])
            r_now = [a / p for a, p in zip(seconds["record"], seconds["forecast"])]
            r_before = [a / p for a, p in zip(seconds["record"], seconds["former"])]
            med = sorted(seconds["record"])[len(seconds["record"]) // 2]
            print(f"| {name} | {work:,} | {med:.1f} | {spread(r_now)} | {spread(r_before)} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
