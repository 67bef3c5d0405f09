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
    conds = sorted({tuple(np.asarray(runs[k].values[i]).item() for k in KEYS) for i in range(runs.sizes["run"])})
    out = {k: [] for k in ("n_runs", "n_unstable", "lambda1_mean", "lambda1_sem", "ratio_mean", "ratio_sem", "onset_mean")}
    for c in conds:
        m = np.ones(runs.sizes["run"], bool)
        for k, v in zip(KEYS, c):
            m &= runs[k].values == v
        lam = runs.lambda1.values[m]
        ok = np.isfinite(lam)
        lam = lam[ok]
        ratio = lam / (2.0 / c[1])
        n = lam.size
        sem = lambda x: float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else np.nan
        out["n_runs"].append(int(m.sum()))
        out["n_unstable"].append(n)
        out["lambda1_mean"].append(float(lam.mean()) if n else np.nan)
        out["lambda1_sem"].append(sem(lam))
        out["ratio_mean"].append(float(ratio.mean()) if n else np.nan)
        out["ratio_sem"].append(sem(ratio))
        out["onset_mean"].append(float(runs.first_instability.values[m][ok].mean()) if n else np.nan)
    coords = {k: ("condition", np.array([c[i] for c in conds], dtype=object if k == "loss_name" else None))
              for i, k in enumerate(KEYS)}
    ds = xr.Dataset({k: ("condition", np.array(v)) for k, v in out.items()},
                    coords={"condition": np.arange(len(conds)), **coords})
    ds["two_over_eta"] = 2.0 / ds.eta
    ds.attrs.update(runs.attrs)
    return ds
