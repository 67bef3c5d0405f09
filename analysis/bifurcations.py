"""Instability and period-doubling detection from the dynamics alone, for saved runs.

The criterion and its thresholds live in `landscape.instability` (shared with the
recorder's online early stop); this module applies it to a store, per replica and per
oscillation period of Γ, and adds λ1, λ2 at every onset.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.instability import LEVELS, Detector, onsets, states  # noqa: F401  (re-exported)

from .io import open_run, replica_coords


def detect(path, det: Detector = Detector(), variable: str = "loss") -> xr.Dataset:
    """Onset steps and λ1, λ2 there, per replica and per oscillation period of Γ."""
    det.validate()
    ds, cfg = open_run(path)
    if variable not in ("loss", "loss_static", "train_acc"):
        raise LandscapeError(f"cannot detect on '{variable}'; use loss, loss_static or train_acc")
    x = ds[variable].values
    steps = ds.sizes["step"]
    st = states(x, det)
    periods = ds.period.values.astype(int)
    ncyc = int(np.ceil(steps / periods.min()))
    R = ds.sizes["replica"]
    onset = np.full((R, ncyc, len(LEVELS)), np.nan)
    hs = ds.hstep.values
    ev = ds.eigval.values if ds.sizes["hstep"] else np.full((R, 0, 2), np.nan)
    for r in range(R):
        T = periods[r]
        for k in range(int(np.ceil(steps / T))):
            o = onsets(st[r], k * T, min((k + 1) * T, steps), det)
            onset[r, k] = [np.nan if o[l] is None else o[l] for l in LEVELS]
    lam = np.full((R, ncyc, len(LEVELS), 2), np.nan)
    for r in range(R):
        if hs.size:
            for e in range(min(2, ev.shape[2])):
                ok = np.isfinite(onset[r])
                lam[r, ..., e][ok] = np.interp(onset[r][ok], hs, ev[r, :, e])
    first = np.full(R, np.nan)
    for r in range(R):
        hits = onset[r, :, 0][np.isfinite(onset[r, :, 0])]
        if hits.size:
            first[r] = hits.min()
    lam_first = np.array([np.interp(f, hs, ev[r, :, 0]) if np.isfinite(f) and hs.size else np.nan
                          for r, f in enumerate(first)])
    out = xr.Dataset(
        {
            "onset": (("replica", "cycle", "level"), onset),
            "lambda1": (("replica", "cycle", "level"), lam[..., 0]),
            "lambda2": (("replica", "cycle", "level"), lam[..., 1]),
            "first_instability": (("replica",), first),
            "lambda1_first": (("replica",), lam_first),
            "two_over_eta": (("replica",), 2.0 / ds.eta.values),
        },
        coords={"replica": ds.replica.values, "cycle": np.arange(ncyc), "level": np.array(LEVELS, dtype=object),
                **replica_coords(ds)},
        attrs={"detector": str(asdict(det)), "variable": variable, "source": str(path),
               "criterion": "see analysis/bifurcations.py: windowed std of one-step vs p-step differences"},
    )
    out.attrs.update({f"detector_{k}": v for k, v in asdict(det).items()})
    return out
