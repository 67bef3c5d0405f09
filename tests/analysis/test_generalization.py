from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from landscape.analysis.generalization import final_accuracies, summarize

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
