"""λ_max at the first instability against η (the paper's Fig. 4).

For every replica, the first instability is the earliest onset found by
`analysis.bifurcations` (from the dynamics, never from λ_max); λ1 is read off the
recorded spectra at that step. Replicas are grouped by (loss, η, A, T) across any
number of stores; each group gives the mean and standard error of λ1 and of
λ1 / (2/η), and how many replicas showed an instability at all.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from landscape import LandscapeError

from .bifurcations import Detector, detect
from .io import condition_dataset, conditions, mean_sem

KEYS = ("loss_name", "eta", "amplitude", "period")


def first_instabilities(paths, det: Detector = Detector()) -> xr.Dataset:
    """One row per replica of every store: its condition, first onset and λ1 there."""
    rows = []
    for p in paths:
        res = detect(p, det)
        for r in range(res.sizes["replica"]):
            rows.append({
                "loss_name": str(res.loss_name.values[r]), "eta": float(res.eta[r]),
                "amplitude": float(res.amplitude[r]), "period": int(res.period[r]), "seed": int(res.seed[r]),
                "width": int(res.width[r]), "first_instability": float(res.first_instability[r]),
                "lambda1": float(res.lambda1_first[r]), "store": str(p),
            })
    if not rows:
        raise LandscapeError("no replicas in the given stores")
    cols = {k: np.array([row[k] for row in rows], dtype=object if isinstance(rows[0][k], str) else None)
            for k in rows[0]}
    return xr.Dataset({k: ("run", v) for k, v in cols.items()}, coords={"run": np.arange(len(rows))},
                      attrs={f"detector_{k}": v for k, v in det.__dict__.items()})


def summarize(runs: xr.Dataset) -> xr.Dataset:
    """Mean ± standard error of λ1 at the first instability per (loss, η, A, T)."""
    conds = conditions(runs, KEYS)
    stats = {k: [] for k in ("n_runs", "n_unstable", "lambda1_mean", "lambda1_sem", "ratio_mean", "ratio_sem", "onset_mean")}
    for c, m in conds:
        lam = runs.lambda1.values[m]
        ok = np.isfinite(lam)
        stats["n_runs"].append(int(m.sum()))
        stats["n_unstable"].append(int(ok.sum()))
        for name, x in (("lambda1", lam), ("ratio", lam / (2.0 / c[1]))):
            mean, sem = mean_sem(x)
            stats[f"{name}_mean"].append(mean)
            stats[f"{name}_sem"].append(sem)
        stats["onset_mean"].append(mean_sem(runs.first_instability.values[m])[0])
    ds = condition_dataset(stats, conds, KEYS)
    ds["two_over_eta"] = 2.0 / ds.eta
    ds.attrs.update(runs.attrs)
    return ds
