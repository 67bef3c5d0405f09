"""Reading run stores for analysis, and writing analysis results beside them.

The analysis sees a store only through an opened run (`landscape.runs.opened.Run`, read-only) and writes its
results as separate groups (in the run store or in an output store), never into
the recorded arrays.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.store import results
from landscape.store.run import REPLICA_COORDS, consolidate, is_store, require_new_files


def check_target(run_path, out=None) -> Path:
    """Where `save_result` will write, checked before any work: a read-only run store or a
    recorded run given as `out` is refused in one line before minutes of computing, not after."""
    target = Path(out) if out is not None else Path(run_path)
    if out is None and not target.exists():
        raise LandscapeError(f"no store at {run_path}")
    if out is None and not os.access(target, os.W_OK):
        raise LandscapeError(f"{run_path} is read-only; pass --out OTHER.zarr to save the result elsewhere")
    if out is not None and target.exists() and is_store(target) and target.resolve() != Path(run_path).resolve():
        raise LandscapeError(f"--out {out} is a recorded run; choose a separate output store")
    if out is not None and target.exists() and not target.is_dir():
        raise LandscapeError(f"--out {out} exists and is not a Zarr store")
    where = target if target.exists() else target.resolve().parent
    if not where.is_dir():
        raise LandscapeError(f"cannot write {target}: directory {where} does not exist")
    require_new_files(where, target)
    return target


def save_result(result: xr.Dataset, run_path, group: str, out=None) -> str:
    """Write `result` as `group` of `out` (an output store) or, by default, of the run store,
    marked complete once whole (`landscape.store.results`). Returns where it went."""
    target = check_target(run_path, out)
    try:
        results.write(result, target, group)
        consolidate(target)  # so that xarray.open_zarr(target, group=group) finds it
    except OSError as exc:
        raise LandscapeError(f"cannot write {target}/{group}: {exc.strerror or exc}") from None
    return f"{target}/{group}"


def replica_coords(ds: xr.Dataset) -> dict:
    """Per-replica coordinates to carry into results."""
    return {c: ("replica", ds[c].values) for c in REPLICA_COORDS if c in ds.coords}


def edge_of(ds: xr.Dataset) -> np.ndarray:
    """Each replica's stability threshold: the stored `edge` (the optimizer's), else 2/η (a store
    from before the optimizers trained with gradient descent)."""
    return np.asarray(ds["edge"].values if "edge" in ds.variables else 2.0 / ds.eta.values, dtype=float)


def sharpness_var(optimizer: str) -> str:
    """The recorded array of the sharpness an optimizer's threshold applies to: `pre_eigval`
    (λ of P⁻¹H, `--precond-k`) for rmsprop and adam, `eigval` (λ of H) for the others."""
    from landscape.problem.optimizers import ADAPTIVE

    return "pre_eigval" if optimizer in ADAPTIVE else "eigval"


def conditions(runs: xr.Dataset, keys, dim: str = "run") -> list[tuple[tuple, np.ndarray]]:
    """The distinct values of `keys` along `dim` (sorted), each with its mask along `dim`."""
    vals = {tuple(np.asarray(runs[k].values[i]).item() for k in keys) for i in range(runs.sizes[dim])}
    out = []
    for c in sorted(vals):
        m = np.ones(runs.sizes[dim], bool)
        for k, v in zip(keys, c):
            m &= runs[k].values == v
        out.append((c, m))
    return out


def mean_sem(x) -> tuple[float, float]:
    """Mean and standard error of the finite entries (NaN where there are too few)."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return np.nan, np.nan
    return float(x.mean()), (float(x.std(ddof=1) / np.sqrt(x.size)) if x.size > 1 else np.nan)


def condition_dataset(stats: dict, conds: list, keys) -> xr.Dataset:
    """A summary Dataset along `condition`, with the condition keys as coordinates."""
    coords = {
        k: ("condition", np.array([c[i] for c, _ in conds], dtype=object if k in ("loss_name", "optimizer") else None))
        for i, k in enumerate(keys)
    }
    return xr.Dataset(
        {k: ("condition", np.array(v)) for k, v in stats.items()}, coords={"condition": np.arange(len(conds)), **coords}
    )
