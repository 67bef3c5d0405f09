"""The cost of recording the iterate signals (landscape.iterates): the recorder's steps with the
tracker against the same steps without it, per engine and batch size.

The reference problem (spiral, 300 points, width 100, float64, DCE, A = 70, T = 5000, η = 1),
stepped as the recorder steps it: the eager engine one step per call (`--eval-every 1`, the
default: a validation pass each step), the fused one 25 steps per call (`--eval-every 25`).
Both runners start from the same θ and run in this one process, interleaved, `--repeats`
times; the table gives min / median / max of the per-repeat time ratio (with / without) and
the memory the tracker holds (its state and the θ references of its ring).

    python bench/bench_iterates.py [--steps 500] [--repeats 7] [--replicas 1 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from landscape.data import spiral_dataset
from landscape.engine import Engine
from landscape.iterates import Tracker
from landscape.model import MLPSpec


def _held_bytes(track: Tracker) -> int:
    ts = [track.d, track.p, track.U, *track._ring]
    return sum(t.numel() * t.element_size() for t in ts)


def run(engine: Engine, theta: torch.Tensor, steps: int, seg: int, tracked: bool) -> tuple[float, int]:
    track = Tracker(theta, 0) if tracked else None
    held = 0
    t0 = time.perf_counter()
    for a in range(0, steps, 1000):
        b = min(a + 1000, steps)
        G = engine.gamma(list(range(a, b)))
        for s in range(a, b, seg):
            theta, _ = engine.steps(theta, s, G[s - a : s - a + seg], True, track)
            if track is not None:
                held = max(held, _held_bytes(track))
        if track is not None:
            track.take(a, b)  # the flush, as the recorder does it
    return time.perf_counter() - t0, held


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = spiral_dataset(100, seed=0, val_seed=1)
    spec = MLPSpec(2, 100, 3)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s), ")
    print(f"# {args.steps} steps per repeat, {args.repeats} repeats, interleaved; ratio = with signals / without\n")
    print("| engine | R | steps/s without | ratio min | median | max | tracker memory |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for fused, seg in ((False, 1), (True, 25)):
        for R in args.replicas:
            eng = Engine(spec, data, "dce", [1.0] * R, [70.0] * R, [5000] * R, fused=fused)
            theta = eng.init(list(range(R)))
            run(eng, theta, 50, seg, True)  # warm-up: the fused build, the allocator
            ratios, base, held = [], [], 0
            for i in range(args.repeats):
                order = (False, True) if i % 2 == 0 else (True, False)
                t = {}
                for tracked in order:
                    t[tracked], h = run(eng, theta, args.steps, seg, tracked)
                    held = max(held, h)
                ratios.append(t[True] / t[False])
                base.append(args.steps / t[False])
            r = np.array(ratios)
            name = "fused (25 steps a call)" if fused else "eager (1 step a call)"
            print(
                f"| {name} | {R} | {np.median(base):,.0f} | {r.min():.3f} | {np.median(r):.3f} | {r.max():.3f} "
                f"| {held / 2**20:.2f} MiB |"
            )


if __name__ == "__main__":
    main()
