"""An opened run: one open and check of the store, the data built once, replay through it."""

from pathlib import Path

import numpy as np
import pytest
import torch

from landscape import LandscapeError
from landscape.runs.opened import Run
from landscape.store.run import RunStore

SHIPPED = Path(__file__).resolve().parents[3] / "data" / "dce_w100_A70_T5000.zarr"


def test_opened_once_and_what_it_holds():
    run = Run.open(SHIPPED)
    assert run.config.loss == "dce" and run.ds.sizes["replica"] == run.num_replicas == 4
    assert run.data is run.data  # built once
    assert Run.of(run) is run and Run.at(run) is run
    # θ at a saved step is the saved vector, bit for bit, and replay goes on from there
    th = run.params_at([0, 1000, 1003], [0])
    np.testing.assert_array_equal(th[0, 1], run.ds.params.isel(replica=0).sel(pstep=1000).values)
    eng = run.engine([0])
    theta = eng.advance(torch.as_tensor(th[0, 1])[None], 1000, 1003)  # an independent walk of 3 steps
    np.testing.assert_array_equal(th[0, 2], theta[0].numpy())


def test_bad_requests_are_one_line():
    run = Run.open(SHIPPED)
    with pytest.raises(LandscapeError, match="replica 4 out of range"):
        run.params_at([0], [4])
    with pytest.raises(LandscapeError, match="step 99999999 out of range"):
        run.params_at([99999999], [0])


def test_a_store_being_recorded_is_not_analysed(tmp_path):
    import shutil

    path = tmp_path / "r.zarr"
    shutil.copytree(SHIPPED, path)
    store = RunStore.open(path, mode="r+")
    store.group.attrs["status"] = "running"
    with pytest.raises(LandscapeError, match="still being recorded"):
        Run.open(path)
    assert Run.at(path).steps_done == RunStore.open(path).steps_done  # replay may still read it
