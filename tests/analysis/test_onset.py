"""The onset measurements against their definitions computed here: the secant curvature at a
vanishing amplitude is v1ᵀHv1 = λ1 of the dense float64 Hessian, the growth and the exponent
are the replayed bounce's and `analysis.lyapunov`'s, and the frozen-Γ replay is an independent
loop of steps with Γ held."""

import numpy as np
import pytest
import torch

from landscape.analysis.bifurcations import detect
from landscape.analysis.lyapunov import lyapunov
from landscape.analysis.onset import _secant, onset_physics
from landscape.config.run import RunConfig
from landscape.recorders import record
from landscape.runs.opened import Run
from tests import reference


@pytest.fixture(scope="module")
def bouncing(tmp_path_factory):
    cfg = RunConfig(loss="dmse1", etas=(0.3,), amplitudes=(50.0,), periods=(5000,), seeds=(2, 3), steps=1400,
                    step="fused", eval_every=50, hessian_every=50, save_params_every=100,
                    chunk_steps=700)  # fmt: skip
    return record(cfg, tmp_path_factory.mktemp("o") / "r.zarr")


def test_the_secant_curvature_at_a_vanishing_amplitude_is_lambda1(bouncing):
    run = Run.open(bouncing)
    eng = run.engine([0])
    theta = torch.as_tensor(run.params_at([300], [0])[:, 0])
    H = reference.dense_hessian(eng, theta, 300, 0)
    w, V = np.linalg.eigh(H)
    got = _secant(eng, theta[0], 300, torch.as_tensor(V[:, -1]), 1e-4)
    assert got == pytest.approx(w[-1], rel=1e-5)


def test_onset_measurements_are_their_definitions(bouncing):
    res = onset_physics(bouncing, window=40, lead=30, horizon=600)
    det = detect(bouncing, lambda_source="replay", confirm_chaos=False)
    run = Run.open(bouncing)
    assert np.isfinite(res.onset.values).all()
    for r in range(2):
        t0 = int(res.onset.values[r])
        assert t0 == det.first_instability.values[r]
        assert res.ratio.values[r] == pytest.approx(det.lambda1_first.values[r] * 0.3 / 2, rel=1e-12)
        th = run.params_at([t0 - 1, t0, t0 + 1, t0 + 39, t0 + 40, t0 + 41], [r])[0]
        p0 = np.linalg.norm(th[2] - 2 * th[1] + th[0])
        p1 = np.linalg.norm(th[5] - 2 * th[4] + th[3])
        assert res.growth.values[r] == pytest.approx(np.log(p1 / p0) / 40, rel=1e-9)
        lam = lyapunov(bouncing, k=1, start=t0, steps=40, replicas=[r]).exponent.values[0, 0]
        assert res.exponent.values[r] == pytest.approx(lam, rel=1e-12)
        # the frozen replay: its own loop of steps with Γ(t0 − 30) held
        eng = run.engine([r])
        s = t0 - 30
        G = eng.gamma(s)
        x = torch.as_tensor(run.params_at([s], [r])[:, 0])
        traj = [x[0].numpy().copy()]
        for _ in range(600):
            x, _ = eng.step(x, s, G, evaluate=False)
            traj.append(x[0].numpy().copy())
        from landscape.dynamics.detector import analyse_iterates
        from landscape.dynamics.iterates import from_trajectory

        first = analyse_iterates(*from_trajectory(np.stack(traj))).first_instability
        np.testing.assert_equal(res.frozen_delay.values[r], first)
        assert np.isfinite(res.frozen_ratio.values[r]) == np.isfinite(first)
