"""Accuracy of the instability detector on systems with known answers, and its false-positive
rate on series where the right answer is "nothing". Prints the tables of docs/analysis.md.

    python bench/detector_accuracy.py [--seeds 20]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from landscape.detector import LEVELS, Detector, analyse  # noqa: E402
from tests.landscape import dynamical_systems  # noqa: E402


def cascade_rows(name, axis, series, truth):
    res = analyse(series)
    got = {lvl: (None if np.isnan(o) else axis[int(o)]) for lvl, o in zip(LEVELS, res.onsets[0])}
    for lvl, true in truth.items():
        g = got.get(lvl)
        err = "—" if g is None else f"{g - true:+.4f}"
        print(f"| {name} | {lvl} | {true:.5f} | {'none' if g is None else f'{g:.5f}'} | {err} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    det = Detector()
    print(f"# detector {det}")
    print("\n| system | level | true | detected | error |\n|---|---|---:|---:|---:|")
    r, x = dynamical_systems.logistic()
    cascade_rows("logistic map, r 2.9→3.58 over 4·10⁵ steps, noise 1e-7", r, x, dynamical_systems.LOGISTIC)
    eta, F = dynamical_systems.double_well()
    cascade_rows("GD on (x²−1)²/4, η 0.9→1.3 over 4·10⁵ steps, noise 1e-10", eta, F, dynamical_systems.DOUBLE_WELL)

    print("\n| growing oscillation (t0, rate, a0, noise) | first step of 16 alternations | detected |\n|---|---:|---:|")
    for t0, rate, a0, noise in (
        (1200, 0.02, 1e-6, 0),
        (1500, 0.01, 1e-8, 0),
        (700, 0.1, 1e-10, 0),
        (300, 0.05, 1e-3, 0),
        (1200, 0.02, 1e-6, 1e-7),
        (1200, 0.02, 1e-6, 1e-6),
        (1200, 0.02, 1e-6, 1e-5),
    ):
        xs, truth = dynamical_systems.growing_oscillation(t0=t0, rate=rate, a0=a0, noise=noise)
        _, clean = dynamical_systems.growing_oscillation(t0=t0, rate=rate, a0=a0)
        print(f"| {t0}, {rate}, {a0:g}, {noise:g} | {clean} | {analyse(xs).first_instability:.0f} |")

    print("\n| series where nothing happens | false positives |\n|---|---:|")
    for name, s in dynamical_systems.smooth_drifts().items():
        print(f"| {name} | {int(np.isfinite(analyse(s).first_instability))} / 1 |")
    t = np.arange(3000, dtype=float)
    for size in (0.01, 0.1, 0.5):
        s = 1 + 1e-4 * t
        s[1500] *= 1 + size
        print(f"| isolated spike of {size:.0%} | {int(np.isfinite(analyse(s).first_instability))} / 1 |")
    ring = 1 + 1e-5 * t
    ring[1500:] += 0.01 * (-0.95) ** (t[1500:] - 1500)
    print(f"| ring-down after a kick (multiplier −0.95) | {int(np.isfinite(analyse(ring).first_instability))} / 1 |")
    _, lx = dynamical_systems.logistic(N=100_000, r0=2.95, r1=2.95)
    print(
        "| logistic map at r = 2.95 with noise 1e-7 (stable, alternating) | "
        f"{int(np.isfinite(analyse(lx).first_instability))} / 1 |"
    )
    for kind in ("gaussian", "heavy"):
        for rel in (1e-8, 1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0):
            hits = sum(
                np.isfinite(analyse(dynamical_systems.noise_suite(rel, kind, seed=s)).first_instability)
                for s in range(args.seeds)
            )
            print(
                f"| smooth drift × (1 + {rel:g}·{'N(0,1)' if kind == 'gaussian' else 't(1.5)'}), 3000 steps | "
                f"{hits} / {args.seeds} |"
            )


if __name__ == "__main__":
    main()
