"""Reading stores for analysis and saving results beside them."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from landscape import LandscapeError
from landscape.analysis.io import conditions, mean_sem, save_result

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def test_mean_sem_against_numpy():
    x = np.array([1.0, 2.0, np.nan, 4.0])
    m, s = mean_sem(x)
    assert m == pytest.approx(7 / 3) and s == pytest.approx(np.std([1, 2, 4], ddof=1) / np.sqrt(3))
    assert np.isnan(mean_sem([np.nan])[0]) and np.isnan(mean_sem([5.0])[1])


def test_conditions_group_every_run_once():
    runs = xr.Dataset({"eta": ("run", [0.5, 1.0, 0.5, 1.0, 0.5]), "period": ("run", [10, 10, 20, 10, 10])})
    conds = conditions(runs, ("eta", "period"))
    assert [c for c, _ in conds] == [(0.5, 10), (0.5, 20), (1.0, 10)]
    masks = np.array([m for _, m in conds])
    assert (masks.sum(axis=0) == 1).all() and masks[0].tolist() == [True, False, False, False, True]


def test_results_go_beside_the_run_or_elsewhere_never_over_a_recorded_run(tmp_path):
    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    res = xr.Dataset({"x": ("a", [1.0, 2.0])})
    assert save_result(res, run, "g") == f"{run}/g"
    assert xr.open_zarr(run, group="g").x.values.tolist() == [1.0, 2.0]
    other = tmp_path / "out.zarr"
    assert save_result(res, run, "g", other) == f"{other}/g"
    with pytest.raises(LandscapeError, match="is a recorded run"):
        save_result(res, run, "g", SHIPPED)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_run_needs_out(tmp_path):
    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    os.chmod(run, 0o555)
    try:
        with pytest.raises(LandscapeError, match="read-only"):
            save_result(xr.Dataset(), run, "g")
    finally:
        os.chmod(run, 0o755)
