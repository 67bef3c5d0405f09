"""The hand-written gradient and HVP against autograd, a dense float64 Hessian and finite differences."""

import pytest
import torch

from landscape.engines import derivatives
from landscape.engines.mlp import MLPEngine
from landscape.problem import losses
from landscape.problem.mlp import MLPSpec
from tests import reference


def spec_of(width, depth, activation) -> MLPSpec:
    """'softplus:4' is the softplus of sharpness β = 4."""
    name, _, beta = activation.partition(":")
    return MLPSpec(2, width, 3, depth, name, float(beta or 1.0))


def make(small_data, loss="dce", depth=1, activation="relu", R=3, width=6):
    spec = spec_of(width, depth, activation)
    eng = MLPEngine(spec, small_data, loss, [0.5] * R, [7.0, 3.0, 1.5][:R], [40, 13, 20][:R])
    theta = spec.init(range(R))
    theta = theta + 0.05 * torch.randn(theta.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    return spec, eng, theta


CASES = [(loss, 1, "relu") for loss in losses.LOSSES] + [
    ("dce", 2, "relu"),
    ("dmse2", 2, "tanh"),
    ("ce", 1, "tanh"),
    ("dce", 2, "softplus"),
    ("dmse1", 1, "softplus:4"),
    ("dmse2", 2, "softplus:0.5"),
]


@pytest.mark.parametrize("loss, depth, act", CASES)
def test_gradient_matches_autograd_and_finite_differences(small_data, loss, depth, act):
    spec, eng, theta = make(small_data, loss, depth, act)
    t = 17
    G = eng.gamma(t)
    g, F, f, _ = derivatives.gradient(spec, theta, eng.XT, eng._loss_fn(G))
    th = theta.clone().requires_grad_(True)
    Fa = reference.loss(eng, th, t)
    (ga,) = torch.autograd.grad(Fa.sum(), th)
    torch.testing.assert_close(F, Fa.detach(), rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(g, ga, rtol=1e-11, atol=1e-13)
    # central finite differences along a random direction, per replica
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    eps = 1e-6
    fd = (reference.loss(eng, theta + eps * v, t) - reference.loss(eng, theta - eps * v, t)) / (2 * eps)
    torch.testing.assert_close((g * v).sum(1), fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss, depth, act", CASES)
def test_hvp_matches_dense_float64_hessian(small_data, loss, depth, act):
    spec, eng, theta = make(small_data, loss, depth, act)
    t = 23
    V = torch.randn(theta.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    HV = eng.hvp(theta, t)(V)
    HV_func = reference.hvp_autodiff(eng, theta, t)(V)
    for r in range(theta.shape[0]):
        H = torch.as_tensor(reference.dense_hessian(eng, theta, t, r))
        torch.testing.assert_close(H, H.T, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(HV[r], H @ V[r], rtol=1e-10, atol=1e-11)
    torch.testing.assert_close(HV, HV_func, rtol=1e-10, atol=1e-11)


def test_hvp_matches_finite_difference_of_gradients(small_data):
    spec, eng, theta = make(small_data, "dmse1")
    t, eps = 5, 1e-6
    V = torch.randn(theta.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    G = eng.gamma(t)
    gp = derivatives.gradient(spec, theta + eps * V, eng.XT, eng._loss_fn(G))[0]
    gm = derivatives.gradient(spec, theta - eps * V, eng.XT, eng._loss_fn(G))[0]
    torch.testing.assert_close(eng.hvp(theta, t)(V), (gp - gm) / (2 * eps), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("loss,depth,act", CASES)
def test_block_hvp_equals_column_hvp(small_data, loss, depth, act):
    """hvp_block (b vectors per replica in one pass) = hvp column by column, also on a subset
    of the replicas (the solver's masking)."""
    from landscape.engines import derivatives

    spec = spec_of(7, depth, act)
    eng = MLPEngine(spec, small_data, loss, [1.0] * 3, [5.0] * 3, [40] * 3)
    th = eng.advance(spec.init(range(3)), 0, 7)
    _, _, _, cache = derivatives.gradient(spec, th, eng.XT, eng._loss_fn(eng.gamma(7)), for_hvp=True)
    V = torch.randn(3, 4, spec.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    ref = torch.stack([derivatives.hvp(spec, cache, V[:, j]) for j in range(4)], 1)
    torch.testing.assert_close(derivatives.hvp_block(spec, cache, V), ref, rtol=1e-12, atol=1e-13)
    rows = torch.tensor([0, 2])
    torch.testing.assert_close(
        derivatives.hvp_block(spec, derivatives.subset(cache, rows), V[rows]), ref[rows], rtol=1e-12, atol=1e-13
    )


def test_the_softplus_sharpens_to_the_relu_and_is_refused_where_it_is_not_written(small_data):
    """At large β the softplus network's gradient is the ReLU network's (away from kinks);
    the fused kernel and a β for another activation are one line each."""
    from landscape import LandscapeError
    from landscape.config.run import RunConfig

    soft, eng_s, theta = make(small_data, "dce", 2, "softplus:1e7")
    relu, eng_r, _ = make(small_data, "dce", 2, "relu")
    G = eng_r.gamma(3)
    g_s = derivatives.gradient(soft, theta, eng_s.XT, eng_s._loss_fn(G))[0]
    g_r = derivatives.gradient(relu, theta, eng_r.XT, eng_r._loss_fn(G))[0]
    torch.testing.assert_close(g_s, g_r, rtol=1e-3, atol=1e-4)
    with pytest.raises(LandscapeError, match="--step fused runs relu and tanh networks, not softplus"):
        RunConfig(activation="softplus", step="fused").validate()
    with pytest.raises(LandscapeError, match="the tanh has no sharpness"):
        RunConfig(activation="tanh", softplus_beta=3.0).validate()
    with pytest.raises(LandscapeError, match="softplus-beta must be a positive number"):
        RunConfig(activation="softplus", softplus_beta=0.0).validate()
    RunConfig(activation="softplus", softplus_beta=3.0).validate()
