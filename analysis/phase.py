"""Where in (amplitude A, period T) a dynamical loss helps: the phase diagram.

Each cell (A, T) of a dynamical loss is held against its static loss trained as long, at the
same width and η (the paper's claim: a region of (A, T) improves on the static loss, results
deteriorate when A and T become too large, and catastrophic forgetting can then occur).
Per run (`runs`): the final validation accuracy (after the static last period, as in Fig. 3),
whether it had settled (`generalization.late_change`), the forgetting measure
(`analysis.forgetting`) and whether the detector found a first instability. Per cell
(`cells`): the gain in mean validation accuracy over the static loss with its standard error
(the two means' errors in quadrature), significant where |gain| > 2 s.e., the mean
forgetting, and the fraction of runs with a first instability.

>>> g = cells(_example(), _example(static=True))
>>> round(float(g.gain.sel(amplitude=10.0, period=50)), 9), bool(g.significant.sel(amplitude=10.0, period=50))
(0.1, True)
>>> round(float(g.gain.sel(amplitude=10.0, period=200)), 9), bool(g.significant.sel(amplitude=10.0, period=200))
(0.0, False)
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.runs.opened import Run

from .first_instability import first_instabilities
from .forgetting import forgetting
from .generalization import expand, final_accuracies
from .io import mean_sem

SETTLED = 0.03  # |drift| and |settle| of the training accuracy below which a run counts as settled (Fig. 3's)


def runs(paths) -> xr.Dataset:
    """One row per replica of the stores (a sweep stands for its batches): condition, final
    accuracies and their settling, forgetting (validation; NaN without per-class accuracy)
    and the first instability (NaN: none)."""
    stores = expand(paths)
    acc = final_accuracies(stores)
    forget, worst = [], []
    for p in stores:
        try:
            f = forgetting(p)
            forget += list(f.forgetting.values)
            worst += list(f.worst.values)
        except LandscapeError:  # recorded without --class-accuracy
            n = Run.open(p).num_replicas
            forget += [np.nan] * n
            worst += [np.nan] * n
    fi = first_instabilities(stores, lambda_source="recorded")  # the onset only: no replay for λ there
    out = acc.assign(
        forgetting=("run", np.asarray(forget, float)),
        worst_drop=("run", np.asarray(worst, float)),
        first_instability=("run", fi.first_instability.values),
        unstable_from_start=("run", fi.unstable_from_start.values),
    )
    if not (np.array_equal(fi.seed.values, acc.seed.values) and np.array_equal(fi.period.values, acc.period.values)):
        raise LandscapeError("the detector's rows and the accuracies' rows differ in order")  # a guard, not a path
    return out


def cells(dynamic: xr.Dataset, static: xr.Dataset) -> xr.Dataset:
    """The (amplitude, period) grid of `dynamic`'s runs against the static runs (one loss,
    width and η each): gain, its s.e. and significance, forgetting, instability fraction,
    runs and settled fraction per cell; the static loss's own values as attributes."""
    A = np.unique(dynamic.amplitude.values)
    T = np.unique(dynamic.period.values)
    s_mean, s_sem = mean_sem(static.val_acc.values)
    shape = (len(A), len(T))
    fields = ("val_mean", "val_sem", "gain", "gain_sem", "forgetting", "forgetting_sem", "unstable", "settled", "n")
    out = {k: np.full(shape, np.nan) for k in fields}
    for i, a in enumerate(A):
        for j, t in enumerate(T):
            m = (dynamic.amplitude.values == a) & (dynamic.period.values == t)
            if not m.any():
                continue
            v_mean, v_sem = mean_sem(dynamic.val_acc.values[m])
            out["val_mean"][i, j], out["val_sem"][i, j] = v_mean, v_sem
            out["gain"][i, j] = v_mean - s_mean
            out["gain_sem"][i, j] = np.hypot(v_sem, s_sem)
            out["forgetting"][i, j], out["forgetting_sem"][i, j] = mean_sem(dynamic.forgetting.values[m])
            out["unstable"][i, j] = np.isfinite(dynamic.first_instability.values[m]).mean()
            out["settled"][i, j] = _settled(dynamic.isel(run=np.flatnonzero(m))).mean()
            out["n"][i, j] = m.sum()
    ds = xr.Dataset(
        {k: (("amplitude", "period"), v) for k, v in out.items()},
        coords={"amplitude": A, "period": T},
        attrs={
            "loss": str(dynamic.loss_name.values[0]),
            "static_loss": str(static.loss_name.values[0]),
            "width": int(dynamic.width.values[0]),
            "eta": float(dynamic.eta.values[0]),
            "static_val_mean": s_mean,
            "static_val_sem": s_sem,
            "static_forgetting": mean_sem(static.forgetting.values)[0],
            "static_unstable": float(np.isfinite(static.first_instability.values).mean()),
            "static_settled": float(_settled(static).mean()),
            "static_n": int(static.sizes["run"]),
        },
    )
    ds["significant"] = np.abs(ds.gain) > 2 * ds.gain_sem
    return ds


def _settled(runs: xr.Dataset) -> np.ndarray:
    """Per run: whether its training accuracy had stopped changing (`late_change` below SETTLED)."""
    ok = np.ones(runs.sizes["run"], dtype=bool)
    for k in ("train_drift", "static_settle"):
        v = runs[k].values
        ok &= ~(np.isfinite(v) & (np.abs(v) >= SETTLED))
    return ok


def draw(grids: list[xr.Dataset], path) -> list[str]:
    """One row per loss pair: the gain over the static loss (significant cells outlined), the
    forgetting and the first-instability fraction, over log-scaled T (x) and A (y)."""
    from .figures import Figure, save

    fig = Figure(figsize=(13, 3.6 * len(grids)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(grids), 3, squeeze=False))
    for row, g in zip(axes, grids):
        xe, ye = _edges(g.period.values), _edges(g.amplitude.values)
        lim = float(np.nanmax(np.abs(g.gain.values))) if np.isfinite(g.gain.values).any() else 1.0
        panels = (
            ("gain", f"val. acc. {g.attrs['loss'].upper()} − {g.attrs['static_loss'].upper()}", "RdBu", -lim, lim),
            ("forgetting", "forgetting (mean largest drop)", "magma_r", 0.0, 1.0),
            ("unstable", "fraction with a first instability", "viridis", 0.0, 1.0),
        )
        for ax, (name, label, cmap, lo, hi) in zip(row, panels):
            im = ax.pcolormesh(xe, ye, g[name].values, cmap=cmap, vmin=lo, vmax=hi)
            fig.colorbar(im, ax=ax, label=label)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(g.period.values, labels=[f"{int(t)}" for t in g.period.values])
            ax.set_yticks(g.amplitude.values, labels=[f"{a:g}" for a in g.amplitude.values])
            ax.minorticks_off()
            ax.set_xlabel("period T (steps)")
            ax.set_ylabel("amplitude A")
            ax.set_title(f"{g.attrs['loss'].upper()} vs {g.attrs['static_loss'].upper()}, width {g.attrs['width']}, "
                         f"η = {g.attrs['eta']:g}", fontsize=8)  # fmt: skip
        sig = g.significant.values
        for i in range(sig.shape[0]):
            for j in range(sig.shape[1]):
                if sig[i, j]:
                    row[0].add_patch(_outline(row[0], xe[j], xe[j + 1], ye[i], ye[i + 1]))
    return save(fig, path)


def _edges(x: np.ndarray) -> np.ndarray:
    """Cell edges of a geometric-ish grid: geometric midpoints, the ends mirrored."""
    x = np.asarray(x, float)
    if len(x) == 1:
        return np.array([x[0] / 1.5, x[0] * 1.5])
    mid = np.sqrt(x[:-1] * x[1:])
    return np.concatenate([[x[0] ** 2 / mid[0]], mid, [x[-1] ** 2 / mid[-1]]])


def _outline(ax, x0, x1, y0, y1):
    from matplotlib.patches import Rectangle

    return Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="k", lw=1.6)


def _example(static: bool = False) -> xr.Dataset:
    """Eight runs of a 1 × 2 grid (or of its static loss) for the doctest."""
    n = 4
    val = np.array([0.5, 0.5, 0.5, 0.5]) if static else np.array([0.6] * n + [0.5, 0.52, 0.48, 0.5])
    k = len(val)
    return xr.Dataset(
        {
            "val_acc": ("run", val),
            "forgetting": ("run", np.zeros(k)),
            "first_instability": ("run", np.full(k, np.nan)),
            "train_drift": ("run", np.zeros(k)),
            "static_settle": ("run", np.zeros(k)),
            "amplitude": ("run", np.full(k, 1.0) if static else np.array([10.0] * k)),
            "period": ("run", np.full(k, 5000) if static else np.array([50] * n + [200] * n)),
            "loss_name": ("run", np.array(["ce" if static else "dce"] * k, dtype=object)),
            "width": ("run", np.full(k, 20)),
            "eta": ("run", np.ones(k)),
        }
    )
