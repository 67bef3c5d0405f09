"""Accuracy of the instability detector on systems with known answers (flip points computed in
tests/landscape/dynamical_systems.py), and its false-positive rate on series where the right
answer is "nothing". Prints the tables of docs/reference/analysis.md.

    python bench/detector_accuracy.py [--seeds 8] [--null-seeds 100]
"""

from __future__ import annotations

import argparse

import harness  # noqa: F401,E402  (puts the checkout on the path: tests.landscape.dynamical_systems)
import numpy as np

from landscape.dynamics.detector import LEVELS, Detector, analyse, analyse_iterates  # noqa: E402
from landscape.dynamics.iterates import from_trajectory  # noqa: E402
from tests.landscape import dynamical_systems as ds  # noqa: E402

MAPS = {
    "sine map r sin(πx), r 0.70→0.86": (
        ds.sine_f,
        ds.sine_j,
        [0.5],
        (0.70, 0.86),
        {"p2": 0.72, "p4": 0.835, "p8": 0.859},
    ),
    "Ricker map x e^{r(1−x)}, r 1.9→2.66": (
        ds.ricker_f,
        ds.ricker_j,
        [0.9],
        (1.9, 2.66),
        {"p2": 2.0, "p4": 2.526, "p8": 2.656},
    ),
    "Hénon map (b = 0.3), a 0.30→1.03": (
        ds.henon_f,
        ds.henon_j,
        [0.5, 0.1],
        (0.30, 1.03),
        {"p2": 0.3675, "p4": 0.9125, "p8": 1.026},
    ),
}
NOISES = (1e-9, 1e-8, 1e-7, 1e-6)


def _err(res, axis, level, truth):
    o = res.onsets[0, LEVELS.index(level)]
    return None if np.isnan(o) else axis[int(o)] - truth


def _row(name, level, truth, errs, unit=""):
    e = np.array([v for v in errs if v is not None], dtype=float)
    miss = sum(v is None for v in errs)
    early = int((e < 0).sum())
    span = "—" if not e.size else f"{e.min():+.2e} … {e.max():+.2e}{unit}"
    print(f"| {name} | {level} | {truth:.6g} | {len(errs)} | {miss} | {early} | {span} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--null-seeds", type=int, default=100)
    args = ap.parse_args()
    det = Detector()
    print(f"# {det}\n")
    print("| system | level | truth | series | missed | early | onset − truth (min … max) |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name, (f, j, x0, (p0, p1), approx) in MAPS.items():
        flips = ds.flips(f, j, x0, approx)
        errs = {lvl: [] for lvl in flips}
        for s in range(args.seeds):
            p, x = ds.ramp_map(f, x0, p0, p1, 200_000, NOISES[s % len(NOISES)], s)
            res = analyse(x[:, 0], None, det)
            for lvl, tr in flips.items():
                errs[lvl].append(_err(res, p, lvl, tr))
        for lvl, tr in flips.items():
            _row(name + ", 2·10⁵ steps, noise 1e-9…1e-6", lvl, tr, errs[lvl])
    r, x = ds.logistic()
    res = analyse(x, None, det)
    for lvl in ("p2", "p4", "p8", "p16", "chaos"):
        _row(
            "logistic map, r 2.9→3.58, 4·10⁵ steps, noise 1e-7",
            lvl,
            ds.LOGISTIC[lvl],
            [_err(res, r, lvl, ds.LOGISTIC[lvl])],
        )
    eta, F = ds.double_well()
    res = analyse(F, None, det)
    for lvl in ("p2", "p4", "p8"):
        _row(
            "GD on (x²−1)²/4 (the loss), η 0.9→1.3, noise 1e-10",
            lvl,
            ds.DOUBLE_WELL[lvl],
            [_err(res, eta, lvl, ds.DOUBLE_WELL[lvl])],
        )
    # the symmetric valley: steps, not a parameter; the iterates (the loss shows nothing)
    for drift in (0.0, 1e-4):
        errs, loss_hits, chaos = [], 0, 0
        for s in range(args.seeds):
            x, F, _ = ds.symmetric_gd(drift=drift, noise=NOISES[s % len(NOISES)], seed=s)
            sc, pj = from_trajectory(x[:, None])
            ri = analyse_iterates(sc, pj, None, det)
            errs.append(None if np.isnan(ri.first_instability) else ri.first_instability - 3000)
            chaos += np.isfinite(ri.onsets[0, 5])
            loss_hits += np.isfinite(analyse(F, None, det).first_instability)
        _row(
            f"GD on ½λ(t)(x−m)² − ¼(x−m)⁴, λη 2 at step 3000 (τ = 93), drift {drift:g}; the iterates",
            "p2",
            3000,
            errs,
            " steps",
        )
        print(
            f"|  ↳ the same, read from the loss | p2 | 3000 | {args.seeds} | {args.seeds - loss_hits} | | "
            f"(chaos on the iterates: {chaos}) |"
        )

    # a run that starts on its period-2 orbit (held at the edge): unstable from the start, no first instability
    held = [analyse_iterates(*from_trajectory(ds.held_bounce(drift=d)[:, None]), None, det) for d in (0.0, 1e-4)]
    ok = sum(r.unstable_from_start and np.isnan(r.first_instability) for r in held)
    name = "GD on the same valley at λη = 2.05 from step 0, on its 2-cycle (drift 0, 1e-4)"
    print(f"| {name} | held | start | 2 | {2 - ok} | | |")
    # past the flip from step 0 beneath a stable direction that rings down (‖p‖ falls, then
    # grows back): unstable from the start; the same ring-down with a flip crossed later: its onset
    S = args.seeds
    regrow = [
        analyse_iterates(*from_trajectory(ds.two_modes(u0=10 ** (-6 + 3 * s / S), w0=0.2 + s / S)), None, det)
        for s in range(S)
    ]
    ok = sum(r.unstable_from_start and np.isnan(r.first_instability) for r in regrow)
    name = "GD on two directions, λ_u η = 2.05 from step 0 (u0 1e-6…1e-3) beneath a ring-down λ_w η = 1.9 (w0 0.2…1.2)"
    print(f"| {name} | regrowth | start | {S} | {S - ok} | | |")
    errs = []
    for s in range(S):
        th = ds.two_modes(ramp=(2000, 2300, 1.9), noise=1e-10, seed=s, w0=0.2 + s / S)
        r = analyse_iterates(*from_trajectory(th), None, det)
        errs.append(None if np.isnan(r.first_instability) or r.unstable_from_start else r.first_instability - 2200)
    _row(
        "the same ring-down, λ_u η 1.9 → 2.05 over steps 2000 … 2300 (2 at 2200), noise 1e-10",
        "p2",
        2200,
        errs,
        " steps",
    )

    print("\n| series where the answer is nothing | series | false alarms | rate |\n|---|---:|---:|---:|")
    N = args.null_seeds

    def rate(name, make):
        hits = sum(
            bool(
                np.isfinite(analyse(make(s), None, det).first_instability)
                or analyse(make(s), None, det).unstable_from_start
            )
            for s in range(N)
        )
        print(f"| {name} | {N} | {hits} | {hits / N:.1%} |")

    for rho in (-0.9, -0.95, -0.99, -0.999):
        rate(f"ring-down after a kick, ρ = {rho}, noise 1e-6", lambda s, rho=rho: ds.ring_down(rho=rho, seed=s))
    for rho in (-0.9, -0.95, -0.99, -0.999):
        rate(f"stationary AR(1), ρ = {rho}", lambda s, rho=rho: ds.ar1(rho=rho, seed=s))
    for rel in (1e-6, 1e-2):
        rate(f"smooth drift × (1 + {rel:g} Gaussian noise)", lambda s, rel=rel: ds.noise_suite(rel, seed=s))
        rate(
            f"smooth drift × (1 + {rel:g} Student-t(1.5) noise)",
            lambda s, rel=rel: ds.noise_suite(rel, "heavy", seed=s),
        )

    def with_nans(s):
        rng = np.random.default_rng(s)
        x = ds.noise_suite(10.0 ** rng.uniform(-8, -1), seed=s)
        x[rng.integers(0, x.size, size=rng.integers(1, 6))] = np.nan
        return x

    rate("noise with 1–5 NaNs", with_nans)
    for le in (1.96, 1.98, 1.99):  # the iterates alternate from step 0 and decay: not held, not unstable
        hits = 0
        for s in range(N):
            x = ds.held_bounce(lam_eta=le, amp=0.05 * (1 + s / N))
            r = analyse_iterates(*from_trajectory(x[:, None]), None, det)
            hits += bool(np.isfinite(r.first_instability) or r.unstable_from_start)
        name = f"GD on the valley at λη = {le} from step 0 off its floor (the iterates)"
        print(f"| {name} | {N} | {hits} | {hits / N:.1%} |")
    hits = 0
    for s in range(N):  # the ring-down above a stable direction (λ_u η = 1.98): nothing, however it starts
        th = ds.two_modes(lam_eta_u=1.98, noise=1e-10, seed=s, u0=10 ** (-6 + 3 * s / N), w0=0.2 + s / N)
        r = analyse_iterates(*from_trajectory(th), None, det)
        hits += bool(np.isfinite(r.first_instability) or r.unstable_from_start)
    name = "GD on two directions, λ_u η = 1.98 and 1.9, ring-down from step 0 (the iterates)"
    print(f"| {name} | {N} | {hits} | {hits / N:.1%} |")


if __name__ == "__main__":
    main()
