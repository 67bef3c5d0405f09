"""The sweep store: a Zarr group whose attributes index its batches, each batch a run store.

    sweep.zarr/zarr.json      attrs: landscape_sweep (schema), spec (JSON), batches (names)
    sweep.zarr/b000/ …        one run store per batch (landscape.store.run layout)

`open_sweep` puts all batches together as one xarray Dataset with the grid as
dimensions, so `ds.sel(loss_name="dce", eta=0.5)` works; the names are a run store's
(`loss` is the recorded dynamical loss F, `loss_name` which loss it is).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr
import zarr

from landscape import LandscapeError
from landscape.store.run import RunStore, is_store, open_dataset

SCHEMA = 1


def batch_name(i: int) -> str:
    return f"b{i:03d}"


def create(path, spec_json: str, names: list[str]):
    g = zarr.open_group(str(path), mode="w-", zarr_format=3)
    g.attrs.update({"landscape_sweep": SCHEMA, "spec": spec_json, "batches": names})


def is_sweep(path) -> bool:
    p = Path(path) / "zarr.json"
    try:
        meta = json.loads(p.read_text())
    except (OSError, ValueError):
        return False
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return isinstance(attrs, dict) and "landscape_sweep" in attrs


def index(path) -> tuple[str, list[str]]:
    """(spec JSON, batch names) of a sweep store."""
    if not Path(path).exists():
        raise LandscapeError(f"{path} does not exist")
    if not is_sweep(path):
        raise LandscapeError(f"{path} is not a landscape sweep store")
    attrs = json.loads((Path(path) / "zarr.json").read_text())["attributes"]
    return attrs["spec"], list(attrs["batches"])


def batch_status(path, name: str) -> str:
    p = Path(path) / name
    if not is_store(p):
        return "missing"
    return RunStore.open(p).status


GRID = ("loss_name", "width", "eta", "amplitude", "period", "seed")


def open_sweep(path, complete_only: bool = True) -> xr.Dataset:
    """All batches as one Dataset with dims loss, width, eta, amplitude, period, seed (and
    time). Parameters and eigenvectors are kept only when every batch has the same width."""
    _, names = index(path)
    parts = []
    for n in names:
        if batch_status(path, n) != "complete" and complete_only:
            raise LandscapeError(f"batch {n} of {path} is not complete; finish it with landscape sweep --resume")
        ds = open_dataset(Path(path) / n)
        parts.append(ds)
    same_width = len({int(p.width.values[0]) for p in parts}) == 1
    drop = [] if same_width else ["params", "eigvec"]
    parts = [p.drop_vars(drop).drop_attrs() for p in parts]
    ds = xr.concat(
        parts, dim="replica", data_vars="all", join="outer", combine_attrs="drop", coords="minimal", compat="override"
    )
    ds = ds.assign_coords(replica=np.arange(ds.sizes["replica"]))
    ds = ds.set_index(replica=list(GRID)).unstack("replica").transpose(*GRID, ...)
    ds.attrs.update(
        {
            "sweep": str(path),
            "batches": names,
            "note": "dims loss_name … seed are the sweep grid; loss is the recorded dynamical loss F",
        }
    )
    return ds
