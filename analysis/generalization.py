"""Validation accuracy against width (the paper's Fig. 3).

For each replica the accuracies at its last recorded step are taken; the paper
measures them after a last oscillation with A = 1 (`--static-last`), so the network
sits in a minimum of the static loss. Replicas are grouped by (loss, width, η, A, T):
mean and standard error over seeds.

The paper's claim is about *where* a network learns: `width_reaching` gives the smallest
width at which a loss's mean validation accuracy reaches a level (0.9 by default), and
the training accuracy a fifth of the run before the end says whether the runs had stopped
changing (`train_change`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.runs.opened import Run
from landscape.store import sweep as sweep_store

from .io import condition_dataset, conditions, mean_sem

KEYS = ("loss_name", "width", "eta", "amplitude", "period")


def expand(paths) -> list[str]:
    """Run stores as given; a sweep store stands for all its batches."""
    out = []
    for p in paths:
        if sweep_store.is_sweep(p):
            out += [str(Path(p) / n) for n in sweep_store.index(p)[1]]
        else:
            out.append(str(p))
    return out


def final_accuracies(paths) -> xr.Dataset:
    rows = []
    for p in expand(paths):
        run = Run.of(p)
        ds, cfg = run.ds, run.config
        last = ds.isel(step=-1)
        before = ds.isel(step=int(0.8 * (ds.sizes["step"] - 1)))  # a fifth of the run earlier
        if np.isnan(last.val_acc.values).all():
            raise LandscapeError(f"{p} has no validation accuracy (its data had no validation set)")
        for r in range(ds.sizes["replica"]):
            rows.append(
                dict(
                    loss_name=cfg.loss,
                    width=cfg.width,
                    eta=float(ds.eta[r]),
                    amplitude=float(ds.amplitude[r]),
                    period=int(ds.period[r]),
                    seed=int(ds.seed[r]),
                    static_last=bool(cfg.static_last),
                    val_acc=float(last.val_acc[r]),
                    train_acc=float(last.train_acc[r]),
                    train_acc_before=float(before.train_acc[r]),
                    step=int(last.step),
                    store=p,
                )
            )
    if not rows:
        raise LandscapeError("no replicas in the given stores")
    cols = {
        k: np.array([row[k] for row in rows], dtype=object if isinstance(rows[0][k], str) else None) for k in rows[0]
    }
    return xr.Dataset({k: ("run", v) for k, v in cols.items()}, coords={"run": np.arange(len(rows))})


def summarize(runs: xr.Dataset, level: float = 0.9) -> xr.Dataset:
    """Mean ± standard error of the final accuracies per (loss, width, η, A, T), the fraction
    of runs whose validation accuracy reached `level`, and the mean change of training
    accuracy over the last fifth of the run (≈ 0 once the runs have converged)."""
    conds = conditions(runs, KEYS)
    names = ("n", "val_mean", "val_sem", "train_mean", "train_sem", "val_reached", "train_change", "train_change_sem")
    stats: dict[str, list] = {k: [] for k in names}
    for _, m in conds:
        stats["n"].append(int(m.sum()))
        for name in ("val", "train"):
            mean, sem = mean_sem(runs[f"{name}_acc"].values[m])
            stats[f"{name}_mean"].append(mean)
            stats[f"{name}_sem"].append(sem)
        stats["val_reached"].append(float(np.mean(runs.val_acc.values[m] >= level)))
        if "train_acc_before" in runs:
            change = mean_sem(runs.train_acc.values[m] - runs.train_acc_before.values[m])
        else:
            change = (np.nan, np.nan)
        stats["train_change"].append(change[0])
        stats["train_change_sem"].append(change[1])
    out = condition_dataset(stats, conds, KEYS)
    out.attrs["level"] = level
    return out


def width_reaching(summary: xr.Dataset, level: float | None = None) -> xr.Dataset:
    """Per (loss, η, A, T): the smallest width whose mean validation accuracy is ≥ `level`
    (NaN if none does), and that width interpolated linearly in log(width) between it and
    the width before (the crossing of the mean curve; equal to it if the smallest width
    already reaches `level`)."""
    level = float(summary.attrs.get("level", 0.9) if level is None else level)
    keys = [k for k in KEYS if k != "width"]
    groups = conditions(summary, keys, dim="condition")
    first, crossing = [], []
    for _, m in groups:
        w, acc = summary.width.values[m].astype(float), summary.val_mean.values[m].astype(float)
        o = np.argsort(w)
        w, acc = w[o], acc[o]
        hit = np.flatnonzero(acc >= level)
        if hit.size == 0:
            first.append(np.nan)
            crossing.append(np.nan)
            continue
        i = hit[0]
        first.append(w[i])
        if i == 0:
            crossing.append(w[0])
        else:
            f = (level - acc[i - 1]) / (acc[i] - acc[i - 1])
            crossing.append(float(np.exp(np.log(w[i - 1]) + f * (np.log(w[i]) - np.log(w[i - 1])))))
    coords = {
        k: ("group", np.array([g[j] for g, _ in groups], dtype=object if k == "loss_name" else None))
        for j, k in enumerate(keys)
    }
    return xr.Dataset(
        {"first_width": ("group", np.array(first)), "crossing_width": ("group", np.array(crossing))},
        coords={"group": np.arange(len(groups)), **coords},
        attrs={"level": level},
    )


def draw_fig3(summary: xr.Dataset, path):
    """Validation accuracy vs width with standard errors, one curve per loss (and η, A, T)."""
    from .figures import Figure, save

    fig = Figure(figsize=(5, 4), constrained_layout=True)
    ax = fig.subplots()
    keys = sorted(
        {
            (str(l), float(e), float(a), int(t))
            for l, e, a, t in zip(
                summary.loss_name.values, summary.eta.values, summary.amplitude.values, summary.period.values
            )
        }
    )
    for l, e, a, t in keys:
        m = (
            (summary.loss_name.values == l)
            & (summary.eta.values == e)
            & (summary.amplitude.values == a)
            & (summary.period.values == t)
        )
        w = summary.width.values[m]
        o = np.argsort(w)
        label = f"{l.upper()} η={e:g}" + ("" if l in ("ce", "mse") else f" A={a:g} T={t}")
        ax.errorbar(
            w[o], summary.val_mean.values[m][o], yerr=summary.val_sem.values[m][o], marker="o", capsize=3, label=label
        )
    ax.set_xscale("log")
    ax.set_xlabel("width (hidden units)")
    ax.set_ylabel("validation accuracy (mean ± s.e.)")
    if "level" in summary.attrs:
        ax.axhline(summary.attrs["level"], color="0.6", ls=":", lw=0.8)
    ax.legend(fontsize=7)
    return save(fig, path)
