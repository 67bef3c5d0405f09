"""An opened run: one open and check of the store, the data built once, replay through it."""

import shutil
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
    assert Run.open(run) is run and Run.open(run, checked=False) is run
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
    assert Run.open(path, checked=False).steps_done == RunStore.open(path).steps_done  # replay may still read it


@pytest.mark.parametrize(
    "command",
    [
        ["analyze", "surface", "STORE", "--at-step", "100", "--grid", "3"],
        ["analyze", "slices", "STORE", "--at-step", "100", "--grid", "3", "--follow", "2"],
        ["analyze", "interpolate", "STORE", "--from-step", "0", "--to-step", "150", "--points", "3"],
        ["analyze", "density", "STORE", "--at-step", "100", "--lanczos-steps", "5", "--vectors", "1"],
        ["record", "--resume", "STORE"],
    ],
)
def test_data_changed_after_recording_are_refused_wherever_theta_is_recomputed(tmp_path, command):
    """A `--data` file edited after the run: every command that recomputes from θ refuses,
    naming the file and both digests, instead of computing on data the run never saw."""
    import h5py
    from click.testing import CliRunner

    from landscape.app.cli import main
    from landscape.config.run import RunConfig
    from landscape.recorders import record
    from landscape.store.run import RunStore

    data = tmp_path / "d.h5"
    shutil.copy(SHIPPED.parent / "spiral_p300.h5", data)
    cfg = RunConfig(loss="dce", etas=(0.5,), width=6, steps=200, hessian_every=50, save_params_every=50,
                    chunk_steps=50, data=str(data))  # fmt: skip
    store = record(cfg, tmp_path / "run.zarr")
    if command[0] == "record":
        RunStore.open(store, mode="r+").set_attrs(status="interrupted", steps_done=100)
    recorded = RunStore.open(store).attrs["data_digest"]
    with h5py.File(data, "r+") as f:
        f["X"][0, 0] = f["X"][0, 0] + 0.5
    args = [{"STORE": str(store)}.get(a, a) for a in command] + (
        ["--out", str(tmp_path / "o.zarr")] if command[0] == "analyze" else []
    )
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and r.output.count("\n") == 1, r.output
    assert "the data differ from those the run was recorded on" in r.output and str(data) in r.output, r.output
    assert recorded[:16] in r.output
