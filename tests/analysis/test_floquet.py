"""Multipliers along a recorded run: the one-step map's smallest real multiplier against
1 − ηλ_max of the dense float64 Hessian of replayed θ, the bisection's crossing against that
dense criterion at the steps either side, and the detector's onsets set beside them."""

from pathlib import Path

import numpy as np
import pytest

from landscape.analysis.bifurcations import detect
from landscape.analysis.floquet import flip_step, multipliers_at
from landscape.config.run import RunConfig
from landscape.recorders import record
from landscape.runs import build
from landscape.runs.opened import Run, params_at
from tests import reference


@pytest.fixture(scope="module")
def crossing(tmp_path_factory):
    """DMSE1, η = 0.3, A = 50: the bounce starts within 1,000 steps, λ1 crosses 2/η = 6.67 near it."""
    cfg = RunConfig(loss="dmse1", etas=(0.3,), amplitudes=(50.0,), periods=(5000,), seeds=(2,), steps=1400,
                    step="fused", eval_every=50, hessian_every=50, save_params_every=100,
                    chunk_steps=700)  # fmt: skip
    return record(cfg, tmp_path_factory.mktemp("f") / "r.zarr"), cfg


def _dense_flip(cfg, path, t):
    eng = build.engine(cfg, build.dataset(cfg))
    import torch

    th = torch.as_tensor(params_at(path, [t])[:, 0])
    return 1 - 0.3 * np.linalg.eigvalsh(reference.dense_hessian(eng, th, t, 0))[-1]


def test_the_one_step_multiplier_is_one_minus_eta_lambda_max(crossing):
    path, cfg = crossing
    m = multipliers_at(path, [200, 900], period=1, k=3)
    for j, t in enumerate((200, 900)):
        assert m.flip.values[0, j] == pytest.approx(_dense_flip(cfg, path, t), rel=1e-9, abs=1e-10)


SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def test_the_crossing_is_where_the_dense_criterion_flips():
    """The shipped DCE run, replica 0 (η = 1), whose bounce the detector dates at step 4129:
    the one-step map's multiplier crosses −1 (λ1 = 2/η) at the step the bisection returns, by
    the dense float64 Hessian of replayed θ either side of it."""
    import torch

    run = Run.open(SHIPPED)
    t = flip_step(run, 0, 4129 - 400, 4129 + 400, 1)
    assert 4129 - 400 < t <= 4129 + 400
    eng = run.engine([0])
    flips = []
    for s in (int(t) - 1, int(t)):
        th = torch.as_tensor(run.params_at([s], [0])[:, 0])
        flips.append(1 - float(eng.eta[0]) * np.linalg.eigvalsh(reference.dense_hessian(eng, th, s, 0))[-1])
    assert flips[0] > -1 >= flips[1], flips
    assert np.isnan(flip_step(run, 0, 1000, 1400, 1))  # far below the edge: nothing bracketed


def test_detect_sets_the_multipliers_beside_the_onsets(crossing):
    path, _ = crossing
    res = detect(path, floquet=True, lambda_source="recorded")
    on, flo = res.onset.values, res.onset_floquet.values
    assert np.isfinite(on[0, 0, 1])
    np.testing.assert_array_equal(res.floquet_lag.values, on - flo)
    assert np.isnan(flo[:, :, 0]).all()  # the level 'instability' has no map of its own
