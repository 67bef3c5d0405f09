"""The cost of recording the iterate signals (landscape.dynamics.iterates): the recorder's steps with the
tracker against the same steps without it, per engine and batch size.

The reference problem (spiral, 300 points, width 100, float64, DCE, A = 70, T = 5000, η = 1),
stepped as the recorder steps it: the eager engine one step per call (`--eval-every 1`, the
default: a validation pass each step), the fused one 25 steps per call (`--eval-every 25`).
Both runners start every block from the same θ and alternate block by block in this one
process (`harness.interleaved`: the machine's drift hits both alike); the table gives min / median / max of the
per-repeat time ratio (with / without) and the memory the tracker holds (its state and the θ references of its ring).

    python bench/bench_iterates.py [--steps 100] [--blocks 10] [--repeats 7] [--replicas 1 64] [--flush 1000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from functools import partial

import torch
from harness import interleaved, spread, threads_line

from landscape.dynamics.iterates import Tracker
from landscape.engines.mlp import MLPEngine
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec


def _held_bytes(track: Tracker) -> int:
    ts = [track.state, track.U, *track._ring]
    return sum(t.numel() * t.element_size() for t in ts)


def block(
    engine: MLPEngine, theta: torch.Tensor, t0: int, steps: int, seg: int, track: Tracker | None, flush: int
) -> float:
    """`steps` steps from θ at step t0 as the recorder cuts them; the tracker's flush (its
    signals handed over as NumPy) whenever `flush` steps are held, as the recorder does at a
    chunk's end (--chunk-steps, default 1000)."""
    G = engine.gamma(list(range(t0, t0 + steps)))
    start = time.perf_counter()
    for s in range(0, steps, seg):
        theta, _ = engine.steps(theta, t0 + s, G[s : s + seg], True, track)
    if track is not None and track.t - track.flushed >= flush:  # type: ignore[attr-defined]
        track.take(track.flushed, track.t)  # type: ignore[attr-defined]
        track.flushed = track.t  # type: ignore[attr-defined]
    return time.perf_counter() - start


def _tracker(theta: torch.Tensor) -> Tracker:
    track = Tracker(theta, 0)
    track.flushed = 0  # type: ignore[attr-defined]
    return track


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="steps per block")
    ap.add_argument("--blocks", type=int, default=10, help="blocks per repeat, the runners alternating")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flush", type=int, default=1000, help="steps between the tracker's flushes (--chunk-steps)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = spiral_dataset(100, seed=0, val_seed=1)
    spec = MLPSpec(2, 100, 3)
    print(f"# {platform.processor() or platform.machine()}, {threads_line()}")
    print(
        f"# {args.repeats} repeats of {args.blocks} blocks of {args.steps} steps per runner, interleaved block by "
        f"block from the same θ, the tracker flushed every {args.flush} steps; ratio = with signals / without, "
        "per repeat\n"
    )
    print("| engine | R | steps/s without | ratio min / median / max | tracker memory |")
    print("|---|---:|---:|---|---:|")
    for fused, seg in ((False, 1), (True, 25)):
        for R in args.replicas:
            eng = MLPEngine(spec, data, "dce", [1.0] * R, [70.0] * R, [5000] * R, step="fused" if fused else "eager")
            theta = eng.init(list(range(R)))
            block(eng, theta, 0, 50, seg, _tracker(theta), 50)  # warm-up: the fused build, the allocator
            tracks = [_tracker(theta)]
            runners = {  # each call one block from the same θ; `interleaved` alternates which goes first
                "without": partial(block, eng, theta, 0, args.steps, seg, None, args.flush),
                "with": lambda: block(eng, theta, 0, args.steps, seg, tracks[-1], args.flush),  # noqa: B023
            }
            ratio, base, held = [], [], 0
            for _ in range(args.repeats):
                tracks.append(_tracker(theta))
                spent = {name: sum(ts) for name, ts in interleaved(runners, args.blocks).items()}
                held = max(held, _held_bytes(tracks[-1]))
                ratio.append(spent["with"] / spent["without"])
                base.append(args.steps * args.blocks / spent["without"])
            name = "fused (25 steps a call)" if fused else "eager (1 step a call)"
            print(
                f"| {name} | {R} | {statistics.median(base):,.0f} | {spread(ratio, 3)} | {held / 2**20:.2f} MiB |",
                flush=True,
            )


if __name__ == "__main__":
    main()
