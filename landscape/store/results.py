"""Analysis results and summaries written as xarray groups, marked complete only once whole.

`xarray.Dataset.to_zarr` writes the group's metadata first and its chunks after, so a process
killed in between leaves a group that opens with xarray and shows fill values. A result is
therefore written with `landscape_result = "writing"` in its attributes and marked
`"complete"` by one last attribute write; `open_complete` refuses any other mark (results
written before the mark existed carry none and open as they are).
"""

from __future__ import annotations

import json
from pathlib import Path

import xarray as xr
import zarr

from landscape import LandscapeError

MARK = "landscape_result"


def write(ds: xr.Dataset, target, group: str | None = None) -> None:
    """Write `ds` to the Zarr store `target` (as `group`), marked complete when whole."""
    ds = ds.assign_attrs({MARK: "writing"})
    ds.to_zarr(str(target), group=group, mode="w", consolidated=False, zarr_format=3)
    _mark(target, group)


def _mark(target, group: str | None) -> None:
    """The last write: one attribute update of the group's zarr.json."""
    g = zarr.open_group(str(target), path=group or "", mode="r+", use_consolidated=False)
    g.attrs[MARK] = "complete"


def status(target, group: str | None = None) -> str:
    """'complete', 'writing' (cut off while written), 'unmarked' (older) or 'missing'."""
    meta = Path(target) / (group or "") / "zarr.json"
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return "missing"
    return str(attrs.get(MARK, "unmarked")) if isinstance(attrs, dict) else "missing"


def open_complete(target, group: str | None = None) -> xr.Dataset:
    """The result at `target` (/`group`), loaded; one line where it was never completed."""
    st = status(target, group)
    where = f"{target}" + (f"/{group}" if group else "")
    if st == "missing":
        raise LandscapeError(f"{where} does not exist or is not a Zarr group")
    if st == "writing":
        raise LandscapeError(f"{where} was cut off while it was written (marked '{MARK}: writing'); compute it again")
    try:
        with xr.open_zarr(str(target), group=group, consolidated=False) as ds:
            out = ds.load()
    except Exception as exc:
        raise LandscapeError(f"cannot read {where}: {(str(exc).splitlines() or [''])[0]}") from None
    out.attrs.pop(MARK, None)
    return out
