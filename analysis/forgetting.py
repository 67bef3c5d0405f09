"""Catastrophic forgetting under a dynamical loss, read from the per-class accuracy.

While Γ emphasises one class the others are de-emphasised; if the network then unlearns one
of them, that class's accuracy falls within the period and recovers (or not) when its turn
comes. The measure (docs/reference/analysis.md): for each complete period [kT, (k+1)T) of the
dynamical phase, the largest drop of any class's accuracy within the period,

    d_k = max_c max_{i ≤ j in period k} (a_c(i) − a_c(j)),

a fall from an earlier value to a later one (a rise is no drop); the run's forgetting is the
mean of d_k over its periods, with the largest d_k beside it. NaN steps (between the
`--eval-every` steps) are skipped; a period with no evaluated step, or a diverged replica's
periods from its divergence on, do not count. 0 means no class ever lost accuracy within a
period; 1 means some class went from all right to all wrong.

>>> a = np.zeros((8, 2)); a[:, 0] = [1, 0.5, 1, 1, 0.9, 0.2, 0.6, 1]; a[:, 1] = 0.5
>>> per_period(a, np.arange(8), 4)
array([0.5, 0.7])
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.problem.schedule import static_start
from landscape.runs.opened import Run


def largest_drop(acc: np.ndarray) -> float:
    """max over classes and over i ≤ j of acc[i, c] − acc[j, c] (acc (steps, C), NaN skipped);
    NaN when no step is finite."""
    ok = np.isfinite(acc).all(axis=1)
    a = acc[ok]
    if not len(a):
        return float("nan")
    return float((np.maximum.accumulate(a, axis=0) - a).max())


def per_period(acc: np.ndarray, steps: np.ndarray, period: int, stop: int | None = None) -> np.ndarray:
    """d_k of every complete period [kT, (k+1)T) that ends by `stop` (default: the last step + 1)
    for one replica's per-class accuracy acc (len(steps), C) at `steps`."""
    steps = np.asarray(steps)
    stop = int(steps[-1]) + 1 if stop is None else int(stop)
    out = []
    for k in range(stop // period):
        inside = (steps >= k * period) & (steps < (k + 1) * period)
        out.append(largest_drop(acc[inside]) if inside.any() else np.nan)
    return np.asarray(out, dtype=float)


def forgetting(source, variable: str = "class_val_acc") -> xr.Dataset:
    """Per replica of a recorded run: `forgetting` (the mean d_k over the complete periods of
    its dynamical phase, before a static last period and before a divergence), `worst` (the
    largest d_k) and `periods` (how many counted), from the per-class accuracy `variable`
    (class_val_acc or class_train_acc; recorded with --class-accuracy)."""
    run = Run.open(source)
    ds = run.ds
    if variable not in ds:
        raise LandscapeError(f"{run.path} has no {variable}: record with --class-accuracy to measure forgetting")
    acc = ds[variable].values
    steps = ds.step.values
    cfg = run.config
    diverged = np.asarray(run.store.attrs.get("diverged_at", [-1] * acc.shape[0]))
    mean, worst, count = (np.full(acc.shape[0], np.nan) for _ in range(3))
    for r, rep in enumerate(cfg.replicas()):
        stop = static_start(cfg.steps, rep.period) if cfg.static_last else len(steps)
        if diverged[r] >= 0:
            stop = min(stop, int(diverged[r]))
        d = per_period(acc[r], steps, rep.period, min(stop, len(steps)))
        d = d[np.isfinite(d)]
        count[r] = len(d)
        if len(d):
            mean[r], worst[r] = d.mean(), d.max()
    coords = {name: ds[name] for name in ("seed", "eta", "amplitude", "period", "loss_name") if name in ds.coords}
    return xr.Dataset(
        {
            "forgetting": ("replica", mean, {"long_name": f"mean over periods of the largest within-period drop "
                                                          f"of any class's accuracy ({variable})"}),
            "worst": ("replica", worst, {"long_name": "the largest within-period drop of any period"}),
            "periods": ("replica", count, {"long_name": "complete dynamical periods counted"}),
        },
        coords={"replica": ds.replica.values, **{k: ("replica", v.values) for k, v in coords.items()}},
        attrs={"source": str(run.path), "variable": variable},
    )  # fmt: skip
