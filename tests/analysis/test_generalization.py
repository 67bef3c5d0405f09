from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from landscape.analysis.generalization import final_accuracies, summarize, width_reaching

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def test_final_accuracies_and_summary():
    runs = final_accuracies([SHIPPED])
    ds = xr.open_zarr(SHIPPED)
    np.testing.assert_array_equal(runs.val_acc.values, ds.val_acc.isel(step=-1).values)
    summ = summarize(runs)
    assert summ.sizes["condition"] == 2  # η = 0.5 and 1, two seeds each
    for i in range(2):
        s = summ.isel(condition=i)
        v = runs.val_acc.values[runs.eta.values == float(s.eta)]
        assert float(s.val_mean) == pytest.approx(v.mean())
        assert float(s.val_sem) == pytest.approx(v.std(ddof=1) / np.sqrt(2))


def table(rows, level=0.9):
    """A Fig. 3 summary from (loss, width, mean validation accuracy) rows."""
    n = len(rows)
    return xr.Dataset(
        {"val_mean": ("condition", np.array([r[2] for r in rows], float))},
        coords={
            "condition": np.arange(n),
            "loss_name": ("condition", np.array([r[0] for r in rows], dtype=object)),
            "width": ("condition", np.array([r[1] for r in rows])),
            "eta": ("condition", np.ones(n)),
            "amplitude": ("condition", np.full(n, 70.0)),
            "period": ("condition", np.full(n, 5000)),
        },
        attrs={"level": level},
    )


def reach(summary, loss):
    r = width_reaching(summary)
    i = list(r.loss_name.values).index(loss)
    return float(r.first_width[i]), float(r.crossing_width[i])


def test_width_reaching_interpolates_in_log_width():
    # DCE crosses 0.9 between 10 (0.8) and 40 (1.0): halfway in log width = 20; CE never does
    s = table([("dce", 40, 1.0), ("dce", 10, 0.8), ("dce", 5, 0.5), ("ce", 5, 0.4), ("ce", 10, 0.6), ("ce", 40, 0.85)])
    assert reach(s, "dce") == (40.0, pytest.approx(20.0))
    first, cross = reach(s, "ce")
    assert np.isnan(first) and np.isnan(cross)  # "nothing" is an answer


def test_width_reaching_edge_cases():
    # the smallest width already reaches it; a dip after the first crossing does not move it;
    # exactly at the level counts
    s = table([("a", 5, 0.95), ("a", 10, 0.7), ("b", 5, 0.3), ("b", 10, 0.9), ("b", 20, 0.6), ("b", 50, 0.99)])
    assert reach(s, "a") == (5.0, 5.0)
    assert reach(s, "b") == (10.0, pytest.approx(10.0))
    # another level, passed explicitly
    r = width_reaching(s, level=0.5)
    assert float(r.first_width[list(r.loss_name.values).index("b")]) == 10.0
    assert r.attrs["level"] == 0.5


def test_summary_counts_runs_reaching_the_level_and_the_late_change():
    runs = final_accuracies([SHIPPED])
    ds = xr.open_zarr(SHIPPED)
    before = ds.train_acc.isel(step=int(0.8 * (ds.sizes["step"] - 1))).values
    np.testing.assert_array_equal(runs.train_acc_before.values, before)
    summ = summarize(runs, level=0.5)
    for i in range(summ.sizes["condition"]):
        m = runs.eta.values == float(summ.eta[i])
        assert float(summ.val_reached[i]) == np.mean(runs.val_acc.values[m] >= 0.5)
        change = runs.train_acc.values[m] - before[m]
        assert float(summ.train_change[i]) == pytest.approx(change.mean())
    assert summ.attrs["level"] == 0.5
