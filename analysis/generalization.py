"""Validation accuracy against width (the paper's Fig. 3).

For each replica the accuracies at its last recorded step are taken; the paper
measures them after a last oscillation with A = 1 (`--static-last`), so the network
sits in a minimum of the static loss. Replicas are grouped by (loss, width, η, A, T):
mean and standard error over seeds.

The paper's claim is about *where* a network learns: `width_reaching` gives the smallest
width at which a loss's mean validation accuracy reaches a level (0.9 by default), and
`late_change` says whether the runs had stopped changing. Under a dynamical loss the
training accuracy oscillates with Γ and jumps when the static last period begins, so the
accuracy a fifth of the run before the end against the last one (`train_change`, kept for
the summaries written with it) measures that jump at any run length; the check compares
period means of the dynamical phase instead (`train_drift`), and says apart what the static
period adds (`static_gain`) and whether it had settled (`static_settle`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.problem.schedule import static_start
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


def late_change(steps, acc, period: int, static_from: int | None = None) -> tuple[float, float, float]:
    """Whether one run's training accuracy had stopped changing: (drift, gain, settle).

    `drift`: the mean over the last period of the dynamical phase (the steps before
    `static_from`, or the whole run) minus the mean over the period ending a fifth of that
    phase earlier; a mean over a whole period does not depend on where in its oscillation
    Γ is, so a converged oscillating run has drift ≈ 0. `gain`: the last accuracy minus the
    last dynamical period's mean, what the static period adds (the paper's measurement).
    `settle`: the last accuracy minus the one half the static period earlier (≈ 0 once the
    static period has settled). Without a static period, gain and settle are NaN; a window
    with no finite value (a diverged run) gives NaN.

    >>> t = np.arange(20000)
    >>> acc = np.where(t < 19000, 0.8 + 0.1 * np.sin(2 * np.pi * t / 1000), 0.9)  # converged; the static jump
    >>> [round(x, 3) for x in late_change(t, acc, 1000, static_from=19000)]
    [0.0, 0.1, 0.0]
    """
    steps, acc = np.asarray(steps), np.asarray(acc, dtype=float)
    end = int(static_from) if static_from is not None else int(steps[-1]) + 1
    earlier = end - round(end / 5)

    def mean(a: int, b: int) -> float:
        x = acc[(steps >= max(a, 0)) & (steps < b)]
        x = x[np.isfinite(x)]
        return float(x.mean()) if x.size else np.nan

    last_period = mean(end - period, end)
    drift = last_period - mean(earlier - period, earlier)
    if static_from is None or static_from > steps[-1]:
        return drift, np.nan, np.nan
    mid = int(np.searchsorted(steps, static_from + (int(steps[-1]) - static_from) // 2))
    return drift, float(acc[-1]) - last_period, float(acc[-1] - acc[mid])


def final_accuracies(paths) -> xr.Dataset:
    """One row per replica: its last validation and training accuracy and how much its training
    accuracy was still changing (`late_change`)."""
    rows = []
    for p in expand(paths):
        run = Run.open(p)
        ds, cfg = run.ds, run.config
        last = ds.isel(step=-1)
        before = ds.isel(step=int(0.8 * (ds.sizes["step"] - 1)))  # a fifth of the run earlier
        if np.isnan(last.val_acc.values).all():
            raise LandscapeError(f"{p} has no validation accuracy (its data had no validation set)")
        steps, train = ds.step.values, ds.train_acc.values
        for r in range(ds.sizes["replica"]):
            period = int(ds.period[r])
            static = static_start(cfg.steps, period) if cfg.static_last else None
            drift, gain, settle = late_change(steps, train[r], period, static)
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
                    train_drift=drift,
                    static_gain=gain,
                    static_settle=settle,
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
    of runs whose validation accuracy reached `level`, and of the late changes of training
    accuracy (`late_change`; ≈ 0 once the runs have converged)."""
    conds = conditions(runs, KEYS)
    late = ("train_change", "train_drift", "static_gain", "static_settle")
    names = ("n", "val_mean", "val_sem", "train_mean", "train_sem", "val_reached")
    stats: dict[str, list] = {k: [] for k in names + late + tuple(f"{k}_sem" for k in late)}
    for _, m in conds:
        stats["n"].append(int(m.sum()))
        for name in ("val", "train"):
            mean, sem = mean_sem(runs[f"{name}_acc"].values[m])
            stats[f"{name}_mean"].append(mean)
            stats[f"{name}_sem"].append(sem)
        stats["val_reached"].append(float(np.mean(runs.val_acc.values[m] >= level)))
        per_run = {k: runs[k].values[m] for k in late[1:] if k in runs}
        if "train_acc_before" in runs:
            per_run["train_change"] = runs.train_acc.values[m] - runs.train_acc_before.values[m]
        for k in late:
            mean, sem = mean_sem(per_run[k]) if k in per_run else (np.nan, np.nan)
            stats[k].append(mean)
            stats[f"{k}_sem"].append(sem)
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
