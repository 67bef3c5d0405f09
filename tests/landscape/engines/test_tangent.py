"""The tangent map of a training step, for every optimizer, against dense float64 Jacobians
written out here from the update rules (the Hessian from `tests.reference`), and the recorded
Lyapunov exponents (`record --lyapunov K`) against dense products of those Jacobians, the
closed form of a quadratic, the replay, a resume and a diverging replica."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from landscape import LandscapeError
from landscape.analysis.lyapunov import lyapunov, recorded
from landscape.config.run import RunConfig
from landscape.engines import tangent
from landscape.runs import build
from landscape.store.integrity import check
from recorders.record import record
from tests.recorders.test_record import crash_and_resume
from tests.reference import dense_hessian, loss

BASE = RunConfig(loss="dce", etas=(0.5, 1.5), amplitudes=(6.0,), periods=(60,), seeds=(0,), width=5, n_per_class=15,
                 steps=120, hessian_every=20, save_params_every=40, chunk_steps=40, betas=(0.7,), alphas=(0.9,),
                 beta1s=(0.8,), beta2s=(0.95,), epsilons=(1e-3,))  # fmt: skip
SMALL_ETA = {"rmsprop": (0.003, 0.006), "adam": (0.003, 0.006)}


def config(opt: str, **kw) -> RunConfig:
    return replace(BASE, **{"optimizer": opt, "etas": SMALL_ETA.get(opt, BASE.etas), **kw})


def dense_jacobian(opt: str, H: np.ndarray, g: np.ndarray, state: dict, r, k: int) -> np.ndarray:
    """The Jacobian of one update of the whole state (θ, buffers…) at step k (1, 2, …), written
    from the rules of landscape.problem.optimizers with H and g of one replica."""
    n = len(g)
    eye, eta = np.eye(n), r.eta
    if opt == "gd":
        return eye - eta * H
    if opt in ("momentum", "nesterov"):  # v' = βv + g, θ' = θ − η v' or θ − η (g + βv')
        b = r.beta
        if opt == "momentum":
            top = np.hstack([eye - eta * H, -eta * b * eye])
        else:
            top = np.hstack([eye - eta * (1 + b) * H, -eta * b * b * eye])
        return np.vstack([top, np.hstack([H, b * eye])])
    if opt == "rmsprop":  # s' = αs + (1 − α)g², θ' = θ − η g / (√s' + ε)
        a, e = r.alpha, r.eps
        s1 = a * state["s"] + (1 - a) * g * g
        D = np.sqrt(s1) + e
        ds_dth, ds_ds = 2 * (1 - a) * g[:, None] * H, a * eye
        dth_dg, dth_dD = -eta / D, eta * g / D**2
        dD_ds1 = 0.5 / np.sqrt(s1)
        J_th = eye + dth_dg[:, None] * H + (dth_dD * dD_ds1)[:, None] * ds_dth
        J_s = (dth_dD * dD_ds1)[:, None] * ds_ds
        return np.vstack([np.hstack([J_th, J_s]), np.hstack([ds_dth, ds_ds])])
    # adam: m' = β1 m + (1 − β1) g, s' = β2 s + (1 − β2) g², θ' = θ − (η/c1) m' / (√s'/√c2 + ε)
    b1, b2, e = r.beta1, r.beta2, r.eps
    c1, c2 = 1 - b1**k, 1 - b2**k
    m1 = b1 * state["m"] + (1 - b1) * g
    s1 = b2 * state["s"] + (1 - b2) * g * g
    D = np.sqrt(s1) / np.sqrt(c2) + e
    dth_dm1 = -(eta / c1) / D
    dth_ds1 = (eta / c1) * m1 / D**2 * 0.5 / (np.sqrt(c2) * np.sqrt(s1))
    dm_dth, dm_dm = (1 - b1) * H, b1 * eye
    ds_dth, ds_ds = 2 * (1 - b2) * g[:, None] * H, b2 * eye
    row_th = [eye + dth_dm1[:, None] * dm_dth + dth_ds1[:, None] * ds_dth,
              dth_dm1[:, None] * dm_dm, dth_ds1[:, None] * ds_ds]  # fmt: skip
    zero = np.zeros((n, n))
    return np.vstack([np.hstack(row_th), np.hstack([dm_dth, dm_dm, zero]), np.hstack([ds_dth, zero, ds_ds])])


def engine_after(cfg: RunConfig, steps: int):
    """An engine of cfg and θ after `steps` steps (the optimizer's state is not zero there)."""
    eng = build.engine(cfg, build.dataset(cfg))
    theta = eng.init([r.seed for r in cfg.replicas()])
    return eng, eng.advance(theta, 0, steps)


def jacobian_of(eng, cfg, theta, t: int, r: int) -> np.ndarray:
    """The dense Jacobian of replica r's step from t (its H, g and buffers)."""
    H = dense_hessian(eng, theta, t, r)
    th = theta.detach().clone().requires_grad_(True)
    g = torch.autograd.grad(loss(eng, th, t)[r], th)[0][r].numpy()
    state = {b: v[r].numpy() for b, v in eng.optimizer_state()[0].items()}
    return dense_jacobian(cfg.optimizer, H, g, state, cfg.replicas()[r], t + 1)


@pytest.mark.parametrize("opt", ["gd", "momentum", "nesterov", "rmsprop", "adam"])
def test_the_tangent_map_is_the_dense_jacobian_of_the_update(opt):
    cfg = config(opt)
    eng, theta = engine_after(cfg, 7)
    N = tangent.state_size(eng)
    assert N == eng.num_params * (1 + len(cfg.optimizer_buffers()))
    V = torch.randn(2, 3, N, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = tangent.apply(eng, theta, 7, eng.gamma(7), V).numpy()
    for r in range(2):
        J = jacobian_of(eng, cfg, theta, 7, r)
        np.testing.assert_allclose(got[r], V[r].numpy() @ J.T, rtol=1e-9, atol=1e-11)


def test_a_diverged_replica_gets_nan_and_costs_nothing():
    cfg = config("momentum")
    eng, theta = engine_after(cfg, 3)
    theta = theta.clone()
    theta[1] = float("nan")
    V = tangent.start(eng, [0, 0], 2, 3)
    W, logs = tangent.push(eng, theta, 3, eng.gamma(3), V)
    assert torch.isnan(W[1]).all() and torch.isnan(logs[1]).all()
    assert torch.isfinite(W[0]).all() and torch.isfinite(logs[0]).all()


@pytest.mark.parametrize("opt", ["gd", "momentum", "adam"])
def test_recorded_exponents_are_dense_products_and_the_replay(tmp_path, opt):
    """Over 100 steps the recorded log stretches equal those of the dense float64 Jacobians
    multiplied with numpy QR each step (1e-8), the window means are theirs, and a replay from
    step 0 gives the same numbers."""
    cfg = config(opt, steps=100, lyapunov=2, lyapunov_window=25)
    path = record(cfg, tmp_path / "r.zarr")
    ds = xr.open_zarr(path)
    eng = build.engine(cfg, build.dataset(cfg))
    theta = eng.init([0, 0])
    Vt = tangent.start(eng, [0, 0], 2, 0).numpy()
    logs = np.zeros((2, 100, 2))
    for t in range(100):
        for r in range(2):
            q, rr = np.linalg.qr(jacobian_of(eng, cfg, theta, t, r) @ Vt[r].T)
            Vt[r] = (q * np.sign(np.diag(rr))).T
            logs[r, t] = np.log(np.abs(np.diag(rr)))
        theta = eng.advance(theta, t, t + 1)
    np.testing.assert_allclose(ds.lyap_stretch.values, logs, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ds.lyap_window.values, logs.reshape(2, 4, 25, 2).mean(2), rtol=1e-8, atol=1e-10)
    again = lyapunov(path, k=2, window=25)
    np.testing.assert_allclose(again.exponent.values, recorded(path).exponent.values, rtol=1e-12, atol=1e-14)


class Linear(nn.Module):
    """A linear classifier: under the static MSE loss its Hessian is the same everywhere."""

    def __init__(self, seed: int):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.lin = nn.Linear(2, 3).double()

    def forward(self, x):
        return self.lin(x)


def make_linear(seed: int) -> nn.Module:
    return Linear(seed)


@pytest.mark.parametrize("opt", ["gd", "momentum", "nesterov"])
def test_a_quadratic_has_the_closed_form_exponents(tmp_path, opt):
    """On a constant Hessian with eigenvalues λ_i the exponents are the largest log|μ| over
    each mode's multipliers μ: 1 − ηλ for gd, the eigenvalues of the mode's 2 × 2 update
    matrix on (x, v) for heavy ball and Nesterov. 600 steps: Benettin's bias is O(1/steps)."""
    cfg = replace(config(opt, steps=600, lyapunov=3, lyapunov_window=0), loss="mse", amplitudes=(1.0,),
                  model=f"{__name__}:make_linear", width=RunConfig.width, chunk_steps=200, save_params_every=200,
                  hessian_every=200, etas=(0.3,))  # fmt: skip
    path = record(cfg, tmp_path / "q.zarr")
    eng = build.engine(cfg, build.dataset(cfg))
    theta = eng.init([0])
    lam = np.linalg.eigvalsh(dense_hessian(eng, theta, 0, 0))
    eta, b = 0.3, 0.7
    mods = []
    for x in lam:
        if opt == "gd":
            mods.append(abs(1 - eta * x))
            continue
        if opt == "momentum":
            M = np.array([[1 - eta * x, -eta * b], [x, b]])
        else:
            M = np.array([[1 - eta * (1 + b) * x, -eta * b * b], [x, b]])
        mods.extend(np.abs(np.linalg.eigvals(M)))
    want = np.sort(np.log(mods))[::-1][:3]
    got = recorded(path).exponent.values[0]
    np.testing.assert_allclose(np.sort(got)[::-1], want, atol=0.02)


@pytest.mark.parametrize("opt", ["gd", "adam"])
def test_a_crash_and_resume_records_the_same_exponents(tmp_path, opt):
    cfg = config(opt, lyapunov=2, lyapunov_window=30)
    full = record(cfg, tmp_path / "full.zarr")
    cut = crash_and_resume(cfg, tmp_path / "cut.zarr", after=50)  # after the first flush (step 40)
    x, y = xr.open_zarr(full), xr.open_zarr(cut)
    for name in ("lyap_stretch", "lyap_window", "loss"):
        np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=name)


def test_the_fused_step_records_the_eager_exponents(tmp_path):
    cfg = config("gd", lyapunov=2, lyapunov_window=20)
    a = xr.open_zarr(record(cfg, tmp_path / "eager.zarr"))
    b = xr.open_zarr(record(replace(cfg, step="fused"), tmp_path / "fused.zarr"))
    np.testing.assert_allclose(a.lyap_stretch.values, b.lyap_stretch.values, rtol=1e-9, atol=1e-11)


def test_a_diverging_replica_reads_nan_from_its_divergence_and_the_other_goes_on(tmp_path):
    cfg = config("gd", loss="dmse1", etas=(0.05, 50.0), amplitudes=(50.0,), lyapunov=2)
    ds = xr.open_zarr(record(cfg, tmp_path / "d.zarr"))
    d = int(xr.open_zarr(tmp_path / "d.zarr").attrs["diverged_at"][1])
    assert 0 <= d < cfg.steps
    assert np.isfinite(ds.lyap_stretch.values[0]).all()
    assert np.isnan(ds.lyap_stretch.values[1, d + 1 :]).all()


def test_check_names_a_missing_piece_of_the_tangent_state_and_the_stretch(tmp_path):
    path = record(config("gd", lyapunov=2), tmp_path / "r.zarr")
    assert check(path).ok
    (path / "lyap_stretch" / "c" / "0" / "1" / "0").unlink()
    slot = next((path / "state" / "tangent" / "c").iterdir())
    next(p for p in slot.rglob("*") if p.is_file()).unlink()
    names = {d.array for d in check(path).damaged}
    assert names == {"lyap_stretch", "state/tangent"}


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(lyapunov=-1), "lyapunov must be from 0"),
        (dict(lyapunov_window=10), "lyapunov-window must be >= 0 and goes with --lyapunov K"),
        (dict(lyapunov=2, lyapunov_window=-5), "lyapunov-window must be >= 0"),
    ],
)
def test_bad_lyapunov_settings_are_one_line(change, message):
    with pytest.raises(LandscapeError, match=message):
        replace(BASE, **change).validate()


def test_more_exponents_than_the_state_has_dimensions_is_one_line(tmp_path):
    from recorders.record import prepare

    cfg = config("momentum", lyapunov=67, width=5)  # n = 2·5 + 5 + 5·3 + 3 = 33: 66 dimensions
    with pytest.raises(LandscapeError, match="at most the state's 66 dimensions"):
        prepare(cfg)


def test_recorded_refuses_a_store_without_them(tmp_path):
    path = record(config("gd", steps=40), tmp_path / "r.zarr")
    with pytest.raises(LandscapeError, match="recorded without --lyapunov"):
        recorded(path)
