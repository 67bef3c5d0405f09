"""λ_max at the first instability against η (the paper's Fig. 4).

For every replica, the first instability is the earliest onset found by
`analysis.bifurcations` (from the dynamics, never from λ_max); λ1 there is the mean of
its two branches, λ1(θ_t) and λ1(θ_{t+1}) (`analysis.branches`), with their spread.
A replica unstable from its first steps has no "first" instability and is counted
apart, and so is one that diverged (its values NaN from some step on). Replicas are
grouped by (loss, η, A, T) across any number of stores (and by optimizer and its threshold
where another optimizer than gradient descent ran); each group gives the mean and standard
error of λ1 and of λ1 over the optimizer's threshold (2/η for gradient descent; λ is then of
P⁻¹H for rmsprop and adam), the mean branch spread, and how many replicas became unstable at all.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from landscape import LandscapeError

from .bifurcations import Detector, detect
from .io import condition_dataset, conditions, mean_sem

KEYS = ("loss_name", "eta", "amplitude", "period")


def first_instabilities(paths, det: Detector = Detector(), lambda_source: str = "auto") -> xr.Dataset:
    """One row per replica of every store: its condition, first onset and λ1 there (branch mean)."""
    rows = []
    for p in paths:
        res = detect(p, det, lambda_source=lambda_source)
        for r in range(res.sizes["replica"]):
            rows.append(
                {
                    "optimizer": str(res.optimizer_label.values[r]) if "optimizer_label" in res else "gd",
                    "loss_name": str(res.loss_name.values[r]),
                    "eta": float(res.eta[r]),
                    "amplitude": float(res.amplitude[r]),
                    "period": int(res.period[r]),
                    "seed": int(res.seed[r]),
                    "width": int(res.width[r]),
                    "first_instability": float(res.first_instability[r]),
                    "lambda1": float(res.lambda1_first[r]),
                    "threshold": float(res.threshold[r]),
                    "lambda1_spread": float(res.lambda1_first_spread[r]),
                    "unstable_from_start": bool(res.unstable_from_start[r]),
                    "diverged": bool(res.diverged_at[r] >= 0),
                    "steps": int(res.steps_run[r]),  # how long the run ran (its early stop)
                    "store": str(p),
                }
            )
    if not rows:
        raise LandscapeError("no replicas in the given stores")
    cols = {
        k: np.array([row[k] for row in rows], dtype=object if isinstance(rows[0][k], str) else None) for k in rows[0]
    }
    return xr.Dataset(
        {k: ("run", v) for k, v in cols.items()},
        coords={"run": np.arange(len(rows))},
        attrs={f"detector_{k}": v for k, v in det.__dict__.items()},
    )


def summarize(runs: xr.Dataset) -> xr.Dataset:
    """Mean ± standard error of λ1 at the first instability per (loss, η, A, T)."""
    # with another optimizer than gd, its name and threshold (which its β sets) part the conditions
    gd_only = "optimizer" not in runs or set(runs.optimizer.values) == {"gd"}
    keys = KEYS if gd_only else ("optimizer", "threshold", *KEYS)
    conds = conditions(runs, keys)
    edge = runs.threshold.values if "threshold" in runs else 2.0 / runs.eta.values
    stats: dict[str, list] = {
        k: []
        for k in (
            "n_runs",
            "n_unstable",
            "n_from_start",
            "n_diverged",
            "lambda1_mean",
            "lambda1_sem",
            "ratio_mean",
            "ratio_sem",
            "spread_mean",
            "spread_ratio",
            "onset_mean",
        )
    }
    for _, m in conds:
        div = runs.diverged.values[m].astype(bool) if "diverged" in runs else np.zeros(int(m.sum()), dtype=bool)
        lam = np.where(div, np.nan, runs.lambda1.values[m])  # a diverged run is counted apart
        ok = np.isfinite(lam)
        stats["n_runs"].append(int(m.sum()))
        stats["n_unstable"].append(int(ok.sum()))
        stats["n_from_start"].append(int(runs.unstable_from_start.values[m].sum()))
        stats["n_diverged"].append(int(div.sum()))
        spread = np.where(div, np.nan, runs.lambda1_spread.values[m])
        sp = float(np.nanmean(spread)) if np.isfinite(spread).any() else np.nan
        stats["spread_mean"].append(sp)
        stats["spread_ratio"].append(sp / edge[m][0])  # one threshold per condition
        for name, x in (("lambda1", lam), ("ratio", lam / edge[m])):
            mean, sem = mean_sem(x)
            stats[f"{name}_mean"].append(mean)
            stats[f"{name}_sem"].append(sem)
        onset = np.where(div, np.nan, runs.first_instability.values[m])  # after a stable stretch
        stats["onset_mean"].append(mean_sem(onset)[0])
    ds = condition_dataset(stats, conds, keys)
    ds["two_over_eta"] = 2.0 / ds.eta
    ds.attrs.update(runs.attrs)
    return ds


def per_loss(summary: xr.Dataset) -> xr.Dataset:
    """Per loss, over its conditions that had an instability: the mean of the conditions'
    λ1 / (2/η), their standard deviation (the spread across η, A and T), min and max, and
    how many conditions and runs it rests on."""
    names = sorted({str(v) for v in summary.loss_name.values})
    cols: dict[str, list] = {
        k: [] for k in ("ratio_mean", "ratio_std", "ratio_min", "ratio_max", "n_conditions", "n_unstable")
    }
    for name in names:
        m = (summary.loss_name.values == name) & np.isfinite(summary.ratio_mean.values)
        r = summary.ratio_mean.values[m].astype(float)
        cols["ratio_mean"].append(float(r.mean()) if r.size else np.nan)
        cols["ratio_std"].append(float(r.std(ddof=1)) if r.size > 1 else np.nan)
        cols["ratio_min"].append(float(r.min()) if r.size else np.nan)
        cols["ratio_max"].append(float(r.max()) if r.size else np.nan)
        cols["n_conditions"].append(int(m.sum()))
        cols["n_unstable"].append(int(summary.n_unstable.values[m].sum()))
    return xr.Dataset(
        {k: ("loss_name", np.array(v)) for k, v in cols.items()}, coords={"loss_name": np.array(names, dtype=object)}
    )
