"""Floquet multipliers along a recorded gradient-descent run, by exact replay: the criterion
beside the detector's.

From step t, the p-step tangent map M_t = J_{t+p−1} ⋯ J_t (J = I − ηH, `landscape.dynamics.
floquet`) has a multiplier crossing −1 where an orbit of period p flips into period 2p: p = 1 at
the first instability (the linear criterion, λ1 = 2/η), p = 2 on the bounce at the period-4
onset, p = 4 at period 8. `flip_step` finds the step where the smallest real multiplier of M_t
crosses −1 near a given onset by bisection, so `analyze bifurcations --floquet` can set each
detected onset beside the multipliers' own.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.dynamics.floquet import multipliers
from landscape.runs.opened import Run

PERIOD_OF_LEVEL = {"p2": 1, "p4": 2, "p8": 4, "p16": 8}  # the map whose flip makes that period


def _multipliers(run: Run, eng, r: int, t: int, p: int, k: int = 2):
    """The multipliers of replica r's p-step tangent map from step t (`eng`: its engine)."""
    theta = torch.as_tensor(run.params_at([t], [r])[:, 0]).to(eng.dtype)
    eta, rows = eng.eta.reshape(-1, 1, 1), torch.arange(1)

    def tangent(x, s, V):
        return V - eta * eng.hvp_block(x, s)(V, rows)

    return multipliers(lambda x, s: eng.advance(x, s, s + 1), tangent, theta, t, p, k)


def _flip_at(run: Run, eng, r: int, t: int, p: int, k: int = 2) -> float:
    """The smallest real multiplier of replica r's p-step tangent map from step t."""
    return float(_multipliers(run, eng, r, t, p, k).flip[0])


def multipliers_at(source, steps, period: int = 1, k: int = 2, replicas=None) -> xr.Dataset:
    """The k multipliers of smallest real part of the `period`-step tangent map from each of
    `steps`, per replica: `multiplier_real`, `multiplier_imag` (replica, step, k) and `flip`
    (replica, step), the smallest real one (below −1: flipped)."""
    run = Run.open(source)
    if run.config.optimizer != "gd":
        opt = run.config.optimizer
        raise LandscapeError(f"{run.path}: the multipliers here are of gradient descent's map, not {opt}'s")
    idx = run.check_replicas(replicas)
    steps = [int(s) for s in steps]
    done = run.steps_done
    if any(not 0 <= s or s + period > done for s in steps):
        raise LandscapeError(f"steps and their {period}-step maps must lie within the recorded 0 … {done - 1}")
    out = np.full((len(idx), len(steps), k), np.nan, dtype=complex)
    flip = np.full((len(idx), len(steps)), np.nan)
    for i, r in enumerate(idx):
        eng = run.engine([r])
        for j, t in enumerate(steps):
            m = _multipliers(run, eng, r, t, period, k)
            out[i, j], flip[i, j] = m.values[0], m.flip[0]
    return xr.Dataset(
        {
            "multiplier_real": (("replica", "step", "k"), out.real),
            "multiplier_imag": (("replica", "step", "k"), out.imag),
            "flip": (("replica", "step"), flip, {"long_name": "smallest real multiplier (< −1: flipped)"}),
        },
        coords={"replica": np.asarray(idx), "step": np.asarray(steps), "k": np.arange(k)},
        attrs={"source": str(run.path), "period": period},
    )


def flip_step(run: Run, r: int, lo: int, hi: int, p: int, tol: int = 1) -> float:
    """The step in [lo, hi] where replica r's p-step map's smallest real multiplier first drops
    below −1, by bisection to `tol` steps: NaN unless it is above −1 at lo and below at hi (no
    crossing bracketed). A bounce alternates branches; bisection finds a crossing, the first
    where the multiplier moves monotonically through −1."""
    eng = run.engine([r])
    lo, hi = max(0, int(lo)), min(int(hi), run.steps_done - p)
    if hi <= lo:
        return float("nan")
    a, b = _flip_at(run, eng, r, lo, p), _flip_at(run, eng, r, hi, p)
    if not (a > -1 and b <= -1):
        return float("nan")
    while hi - lo > tol:
        mid = (lo + hi) // 2
        if _flip_at(run, eng, r, mid, p) <= -1:
            hi = mid
        else:
            lo = mid
    return float(hi)
