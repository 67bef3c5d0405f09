"""The exponents of a recorded run by replay and batched HVPs, against dense float64 products
of (I − ηH_t) with the dense Hessian at every replayed step (numpy QR each step), 200 steps."""

import numpy as np
import pytest
import torch

from landscape import LandscapeError
from landscape.analysis.lyapunov import TANGENT_SALT, lyapunov
from landscape.config.run import RunConfig
from landscape.curvature.eigen import random_block
from landscape.recorders import record
from landscape.runs.opened import Run
from tests.reference import dense_hessian


def test_exponents_against_dense_products(tmp_path):
    cfg = RunConfig(loss="dce", etas=(1.0, 2.5), amplitudes=(6.0,), periods=(60,), seeds=(0,), width=5,
                    steps=260, hessian_every=20, save_params_every=20, chunk_steps=20, n_per_class=15)  # fmt: skip
    path = record(cfg, tmp_path / "r.zarr")
    res = lyapunov(path, k=2, start=40, steps=200, window=50)
    run = Run.open(path)
    eng = run.engine()
    theta = torch.as_tensor(run.params_at([40])[:, 0])
    n = eng.num_params
    W = random_block([0, 0], 2, n, 40 + TANGENT_SALT, torch.float64, "cpu").numpy()
    logs = np.zeros((2, 2, 200))
    for i, t in enumerate(range(40, 240)):
        for r in range(2):
            J = np.eye(n) - cfg.etas[r] * dense_hessian(eng, theta, t, r)
            q, rr = np.linalg.qr(J @ np.linalg.qr(W[r].T)[0] if i == 0 else J @ W[r].T)
            W[r] = q.T
            logs[r, :, i] = np.log(np.abs(np.diag(rr)))
        theta = eng.advance(theta, t, t + 1)
    np.testing.assert_allclose(res.exponent.values, logs.mean(-1), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.window_exponent.values, logs.reshape(2, 2, 4, 50).mean(-1), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(res.running.values[..., -1], res.exponent.values, rtol=1e-12)
    assert res.exponent.values[1, 0] > res.exponent.values[0, 0]  # the larger step, the less stable map


def test_steps_outside_the_recording_are_one_line(tmp_path):
    cfg = RunConfig(loss="dce", etas=(1.0,), amplitudes=(6.0,), periods=(60,), seeds=(0,), width=5,
                    steps=40, hessian_every=20, save_params_every=20, chunk_steps=20, n_per_class=15)  # fmt: skip
    path = record(cfg, tmp_path / "r.zarr")
    with pytest.raises(LandscapeError, match="are not all recorded"):
        lyapunov(path, start=30, steps=20)


def test_a_twin_at_a_small_distance_follows_the_tangent_map(tmp_path):
    """The twin started ε along v1 (the top Hessian eigenvector at the start): at ε = 1e-8 its
    separation over 40 steps is the dense float64 product of (I − ηH_t) applied to v1 (1e-5),
    while a twin at 1e-2 is measured in the same batch; a distance of 0 is one line."""
    from landscape.analysis.lyapunov import twin_separation

    cfg = RunConfig(loss="dce", etas=(1.0, 2.5), amplitudes=(6.0,), periods=(60,), seeds=(0,), width=5,
                    steps=120, hessian_every=20, save_params_every=20, chunk_steps=20, n_per_class=15)  # fmt: skip
    path = record(cfg, tmp_path / "r.zarr")
    res = twin_separation(path, start=40, steps=40, eps=(1e-8, 1e-2))
    run = Run.open(path)
    eng = run.engine()
    theta = torch.as_tensor(run.params_at([40])[:, 0])
    n = eng.num_params
    want = np.empty((2, 40))
    for r in range(2):
        w, V = np.linalg.eigh(dense_hessian(eng, theta, 40, r))
        want[r, 0] = 0
        v = V[:, -1]
        th = theta.clone()
        for i, t in enumerate(range(40, 80)):
            v = (np.eye(n) - cfg.etas[r] * dense_hessian(eng, th, t, r)) @ v
            want[r, i] = np.linalg.norm(v)
            th = eng.advance(th, t, t + 1)
    np.testing.assert_allclose(res.separation.values[:, 0], want, rtol=1e-5)
    assert res.separation.sizes["step"] == 40 and np.isfinite(res.growth.values).all()
    assert res.growth.values[1, 0] > res.growth.values[0, 0]  # the larger step, the faster separation
    with pytest.raises(LandscapeError, match="distances ε must be > 0"):
        twin_separation(path, start=40, steps=5, eps=(0.0,))
    from click.testing import CliRunner

    from landscape.app.cli import main

    args = ["analyze", "lyapunov", str(path), "--from-step", "40", "--steps", "40", "--twin-eps", "1e-8"]
    r = CliRunner().invoke(main, [*args, "--twin-eps", "1e-2", "--out", str(tmp_path / "o.zarr")])
    assert r.exit_code == 0 and "ε 1e-08" in r.output and "ε 0.01" in r.output, r.output
    import xarray as xr

    saved = xr.open_zarr(tmp_path / "o.zarr", group="lyapunov")
    np.testing.assert_allclose(saved.twin_growth.values, res.growth.values, rtol=1e-12)
