"""Replay rebuilds θ_t bit for bit: against the saved vectors and an independent step loop."""

import numpy as np
import pytest
import xarray as xr

from landscape import LandscapeError
from landscape.recorders import record
from landscape.runs import build
from landscape.runs.opened import params_at


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from landscape.config.run import RunConfig

    cfg = RunConfig(
        loss="dmse1",
        etas=(0.3, 0.6),
        amplitudes=(4.0,),
        periods=(30,),
        seeds=(0, 1),
        width=6,
        steps=100,
        hessian_every=10,
        save_params_every=20,
        chunk_steps=20,
        n_per_class=8,
    )
    return cfg, record(cfg, tmp_path_factory.mktemp("r") / "run.zarr")


def test_saved_steps_are_the_saved_vectors(run):
    _, path = run
    ds = xr.open_zarr(path)
    got = params_at(path, [0, 20, 80], [0, 3])
    np.testing.assert_array_equal(got, ds.params.isel(replica=[0, 3]).sel(pstep=[0, 20, 80]).values)


def test_any_step_equals_an_independent_training_loop(run):
    cfg, path = run
    eng = build.engine(cfg, build.dataset(cfg))
    theta = eng.spec.init([r.seed for r in cfg.replicas()])
    traj = {}
    for t in range(100):
        traj[t] = theta.clone()
        theta, _ = eng.step(theta, t)
    steps = [99, 3, 57, 21, 20, 58]  # unordered, across save intervals, repeated intervals
    got = params_at(path, steps, [2, 1])
    for j, s in enumerate(steps):
        np.testing.assert_array_equal(got[:, j], traj[s][[2, 1]].numpy())


def test_out_of_range(run):
    _, path = run
    with pytest.raises(LandscapeError, match="step 100 out of range"):
        params_at(path, [100])
    with pytest.raises(LandscapeError, match="replica 4 out of range"):
        params_at(path, [0], [4])
