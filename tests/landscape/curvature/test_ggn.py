"""The Gauss–Newton operator against the dense float64 Jᵀ H_out J (tests.reference.dense_ggn):
its products and its top eigenpairs, for every loss, the built-in MLP and a module; positive
semi-definite where the Hessian is not."""

import numpy as np
import pytest
import torch

from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.engines.module import ModuleEngine
from landscape.problem.mlp import MLPSpec
from tests.reference import dense_ggn, dense_hessian


@pytest.mark.parametrize("loss", ["ce", "dce", "mse", "dmse1", "dmse2"])
def test_products_and_top_pairs_against_the_dense_matrix(small_data, loss):
    spec = MLPSpec(2, 6, 3)
    eng = MLPEngine(spec, small_data, loss, [0.3, 0.6], [6.0, 3.0], [30, 30])
    theta = eng.advance(spec.init([0, 1]), 0, 25)
    n = spec.num_params
    V = torch.randn(2, 3, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    GV = eng.ggn_block(theta, 25)(V, torch.arange(2))
    res = top_k(eng, theta, 25, k=2, tol=1e-10, max_iter=n, operator="ggn")
    for r in range(2):
        M = dense_ggn(eng, theta, 25, r)
        np.testing.assert_allclose(GV[r].numpy(), V[r].numpy() @ M.T, rtol=1e-10, atol=1e-12)
        w = np.linalg.eigvalsh(M)
        assert w[0] > -1e-10 * w[-1]  # PSD: the losses are convex in the logits
        np.testing.assert_allclose(res.eigvals[r].numpy(), w[::-1][:2], rtol=1e-8)


def test_the_ggn_is_not_the_hessian_where_the_network_curves(small_data):
    """Away from a zero-residual minimum the dropped term Σ ∂ℓ/∂f ∇²f is not zero: the two top
    eigenvalues differ, and the Hessian (not the GGN) has negative eigenvalues."""
    spec = MLPSpec(2, 6, 3, activation="tanh")
    eng = MLPEngine(spec, small_data, "mse", [0.3], [1.0], [30])
    theta = eng.advance(spec.init([0]), 0, 10)
    H, M = dense_hessian(eng, theta, 10, 0), dense_ggn(eng, theta, 10, 0)
    assert np.linalg.eigvalsh(H)[0] < -1e-6 and np.linalg.eigvalsh(M)[0] > -1e-12
    assert np.abs(H - M).max() > 1e-4


def test_a_modules_ggn(small_data):
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(2, 5), torch.nn.Linear(5, 3)

        def forward(self, x):
            return self.b(torch.nn.functional.softplus(self.a(x)))

    eng = ModuleEngine(lambda seed: (torch.manual_seed(seed), Net())[1], [0, 1], small_data, "dce",
                       eta=[0.3, 0.3], amplitude=[4.0, 4.0], period=[20, 20])  # fmt: skip
    theta = eng.theta0.clone()
    res = top_k(eng, theta, 3, k=2, tol=1e-10, max_iter=eng.num_params, operator="ggn")
    for r in range(2):
        M = dense_ggn(eng, theta, 3, r, logits=lambda x: eng.logits(x[None], eng.X)[0])
        np.testing.assert_allclose(res.eigvals[r].numpy(), np.linalg.eigvalsh(M)[::-1][:2], rtol=1e-8)
