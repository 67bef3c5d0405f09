"""Validation accuracy against width (the paper's Fig. 3).

For each replica the accuracies at its last recorded step are taken; the paper
measures them after a last oscillation with A = 1 (`--static-last`), so the network
sits in a minimum of the static loss. Replicas are grouped by (loss, width, η, A, T):
mean and standard error over seeds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from landscape import LandscapeError, sweep_store

from .io import condition_dataset, conditions, mean_sem, open_run

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
        ds, cfg = open_run(p)
        last = ds.isel(step=-1)
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


def summarize(runs: xr.Dataset) -> xr.Dataset:
    """Mean ± standard error of the final accuracies per (loss, width, η, A, T)."""
    conds = conditions(runs, KEYS)
    stats: dict[str, list] = {k: [] for k in ("n", "val_mean", "val_sem", "train_mean", "train_sem")}
    for _, m in conds:
        stats["n"].append(int(m.sum()))
        for name in ("val", "train"):
            mean, sem = mean_sem(runs[f"{name}_acc"].values[m])
            stats[f"{name}_mean"].append(mean)
            stats[f"{name}_sem"].append(sem)
    return condition_dataset(stats, conds, KEYS)


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
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=7)
    return save(fig, path)
