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
