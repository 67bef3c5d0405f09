"""Benettin's exponents against known answers: the logistic map (ln 2 at r = 4, ln|r(1 − 2x*)|
on a stable fixed point, negative in the period-3 window), the Hénon map (0.419, −1.624, their
sum ln b every step), gradient descent on a quadratic (ln|1 − ηλ_i| for every i)."""

import math

import numpy as np
import pytest
import torch

from landscape.dynamics.lyapunov import benettin

f64 = torch.float64


def logistic(r):
    return (lambda x, t: r * x * (1 - x)), (lambda x, t, V: (r * (1 - 2 * x))[:, None, :] * V)


def test_the_logistic_map():
    x0 = torch.tensor([[0.2], [1 - 1 / 2.8], [0.5]], dtype=f64)
    r = torch.tensor([[4.0], [2.8], [3.83]], dtype=f64)
    step, tangent = logistic(r)
    for _ in range(1000):  # the period-3 replica onto its attractor first
        x0 = torch.cat([x0[:2], step(x0, 0)[2:]])
    res = benettin(step, tangent, x0, torch.ones(3, 1, 1, dtype=f64), 10000)
    lam = res.exponents[:, 0].numpy()
    assert abs(lam[0] - math.log(2)) < 0.02  # chaos
    assert lam[1] == pytest.approx(math.log(abs(2.8 * (1 - 2 * (1 - 1 / 2.8)))), abs=1e-12)  # ln 0.8: stable
    assert lam[2] < -0.1  # the period-3 window: a stable cycle


def test_the_henon_map():
    a, b = 1.4, 0.3

    def step(x, t):
        return torch.stack([1 - a * x[:, 0] ** 2 + x[:, 1], b * x[:, 0]], dim=1)

    def tangent(x, t, V):
        return torch.stack([-2 * a * x[:, 0, None] * V[..., 0] + V[..., 1], b * V[..., 0]], dim=-1)

    x0 = torch.tensor([[0.1, 0.1]], dtype=f64)
    for _ in range(1000):
        x0 = step(x0, 0)
    res = benettin(step, tangent, x0, torch.eye(2, dtype=f64)[None], 20000)
    lam = res.exponents[0].numpy()
    assert lam[0] == pytest.approx(0.419, abs=0.01) and lam[1] == pytest.approx(-1.624, abs=0.01)
    np.testing.assert_allclose(res.stretch[0].sum(0).numpy(), math.log(b), atol=1e-12)  # |det J| = b each step


def test_gradient_descent_on_a_quadratic_is_ln_abs_one_minus_eta_lambda():
    """All K = n exponents, exactly, in any basis: H = Q diag(λ) Qᵀ, J = I − ηH."""
    rng = np.random.default_rng(0)
    lam = np.array([30.0, 21.0, 10.0, 1.0, -2.0])
    eta = 0.09  # ηλ1 = 2.7: one unstable direction; 1 − ηλ of −2: 1.18 growing too
    Q = np.linalg.qr(rng.standard_normal((5, 5)))[0]
    H = torch.as_tensor(Q @ np.diag(lam) @ Q.T)
    res = benettin(lambda x, t: x - eta * x @ H, lambda x, t, V: V - eta * V @ H,
                   torch.ones(1, 5, dtype=f64), torch.as_tensor(rng.standard_normal((1, 5, 5))), 400)  # fmt: skip
    want = np.sort(np.log(np.abs(1 - eta * lam)))[::-1]
    np.testing.assert_allclose(res.exponents[0].numpy(), want, atol=2e-3)
    np.testing.assert_allclose(res.windows(100)[0, :, -1].numpy(), want, atol=1e-9)  # converged late on
