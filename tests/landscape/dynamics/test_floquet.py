"""Floquet multipliers against closed forms (GD on a quadratic, the stable 2-cycle of GD on a
softening quartic) and, on the MLP, against the eigenvalues of products of dense float64
(I − ηH) matrices."""

import numpy as np
import pytest
import torch

from landscape.dynamics.floquet import multipliers

f64 = torch.float64


@pytest.mark.parametrize("dense_below", [4096, 0])  # exact, and ARPACK
@pytest.mark.parametrize("p", [1, 2, 3])
def test_gd_on_a_quadratic_has_multipliers_one_minus_eta_lambda_to_the_p(p, dense_below):
    """F = ½ Σ λ_i x_i², η = 0.4: every multiplier is (1 − ηλ_i)^p; the smallest real parts first."""
    g = torch.Generator().manual_seed(0)
    lam = torch.rand(2, 40, generator=g, dtype=f64) * 6 - 0.5  # 2 replicas, some λ < 0
    eta = 0.4
    step = lambda x, t: x - eta * lam * x
    tangent = lambda x, t, V: V - eta * lam[:, None, :] * V
    m = multipliers(step, tangent, torch.randn(2, 40, generator=g, dtype=f64), 0, p, k=3, dense_below=dense_below)
    want = np.sort(((1 - eta * lam) ** p).numpy(), axis=1)[:, :3]
    np.testing.assert_allclose(m.values.real, want, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(m.values.imag, 0, atol=1e-9)
    assert m.method == ("dense" if dense_below else "arpack")


@pytest.mark.parametrize("eta_lam", [2.1, 2.5, 2.9, 3.2])
def test_the_two_cycle_of_gd_on_a_softening_quartic(eta_lam):
    """F = ½λx² − ¼x⁴ + ½μy², η = 1: the floor flips at ηλ = 2 into the cycle ±a, a² = ηλ − 2,
    whose multiplier f'(a) f'(−a) = (2ηλ − 5)² is < 1 up to ηλ = 3 (beyond, f'(±a) < −1 and
    the cycle is unstable); y's is (1 − μ)²."""
    lam, mu = eta_lam, 0.3
    a = np.sqrt(eta_lam - 2)
    step = lambda x, t: torch.stack([x[:, 0] - (lam * x[:, 0] - x[:, 0] ** 3), x[:, 1] * (1 - mu)], dim=1)

    def tangent(x, t, V):
        d = torch.stack([1 - lam + 3 * x[:, 0] ** 2, torch.full_like(x[:, 0], 1 - mu)], dim=1)
        return V * d[:, None, :]

    x0 = torch.tensor([[a, 0.0]], dtype=f64)
    m = multipliers(step, tangent, x0, 0, 2, k=2)
    torch.testing.assert_close(m.x, x0, rtol=0, atol=1e-12)  # the orbit is periodic
    got = np.sort(m.values[0].real)
    want = np.sort([(2 * eta_lam - 5) ** 2, (1 - mu) ** 2])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_the_mlp_against_products_of_dense_float64_tangent_maps(small_data):
    """The 2-step map of the built-in MLP's GD along its own orbit: the multipliers of
    (I − ηH(θ_{t+1}))(I − ηH(θ_t)) from dense float64 Hessians, to 1e-8."""
    from landscape.engines.mlp import MLPEngine
    from landscape.problem.mlp import MLPSpec
    from tests import reference

    spec = MLPSpec(2, 5, 3)
    eng = MLPEngine(spec, small_data, "dce", [2.0], [5.0], [40])
    theta = eng.advance(spec.init([0]), 0, 20)
    rows = torch.arange(1)
    m = multipliers(lambda x, t: eng.advance(x, t, t + 1), lambda x, t, V: V - 2.0 * eng.hvp_block(x, t)(V, rows),
                    theta, 20, 2, k=4)  # fmt: skip
    th1 = eng.advance(theta, 20, 21)
    n = spec.num_params
    J0 = np.eye(n) - 2.0 * reference.dense_hessian(eng, theta, 20, 0)
    J1 = np.eye(n) - 2.0 * reference.dense_hessian(eng, th1, 21, 0)
    want = np.linalg.eigvals(J1 @ J0)
    want = want[np.argsort(want.real, kind="stable")[:4]]
    np.testing.assert_allclose(m.values[0], want, rtol=1e-8, atol=1e-8)
