"""Results and summaries are marked complete only once whole: a write cut off in the middle
(a SIGKILL between xarray's metadata and its chunks) is visible and refused, not read as data."""

import json

import numpy as np
import pytest
import xarray as xr

from landscape import LandscapeError
from landscape.store import results


def _ds():
    return xr.Dataset({"x": (("a",), np.arange(5.0))}, attrs={"note": "kept"})


@pytest.mark.parametrize("group", [None, "bifurcations"])
def test_a_whole_write_is_complete_and_reads_back(tmp_path, group):
    target = tmp_path / "r.zarr"
    results.write(_ds(), target, group)
    assert results.status(target, group) == "complete"
    back = results.open_complete(target, group)
    xr.testing.assert_identical(back, _ds())  # the mark is not part of the result


@pytest.mark.parametrize("group", [None, "slices/r0_t10"])
def test_a_write_cut_off_is_marked_and_refused(tmp_path, group, monkeypatch):
    """The kill is simulated where it does harm: after xarray wrote the group, before the mark."""
    target = tmp_path / "r.zarr"

    def killed(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "_mark", killed)
    with pytest.raises(KeyboardInterrupt):
        results.write(_ds(), target, group)
    monkeypatch.undo()
    assert results.status(target, group) == "writing"
    meta = json.loads((target / (group or "") / "zarr.json").read_text())
    assert meta["attributes"][results.MARK] == "writing"  # what a notebook's xarray shows
    with pytest.raises(LandscapeError, match="cut off while it was written"):
        results.open_complete(target, group)


def test_older_results_without_the_mark_open_and_missing_ones_are_one_line(tmp_path):
    _ds().to_zarr(tmp_path / "old.zarr", mode="w", consolidated=False, zarr_format=3)
    assert results.status(tmp_path / "old.zarr") == "unmarked"
    xr.testing.assert_identical(results.open_complete(tmp_path / "old.zarr"), _ds())
    with pytest.raises(LandscapeError, match="does not exist"):
        results.open_complete(tmp_path / "none.zarr")
