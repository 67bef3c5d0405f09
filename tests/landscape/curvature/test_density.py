"""SLQ and the bottom eigenvalues against dense float64 spectra: the quadrature's moments are
the vectors' own vᵀHᵏv for k ≤ 2M − 1 (round-off), the smoothed density approaches the dense
eigenvalues' distribution as the vector count grows, and λ_min matches eigvalsh, also with a
negative outlier and a near-degenerate bottom pair."""

import numpy as np
import pytest
import torch

from landscape.curvature.density import bottomk_eigs, probes, slq
from landscape.engines.mlp import MLPEngine
from landscape.problem.mlp import MLPSpec
from tests.reference import dense_hessian


def dense_op(H: torch.Tensor):
    """BlockOp of R dense symmetric matrices H (R, n, n)."""
    return lambda V, rows: torch.einsum("rmn,rbn->rbm", H[rows], V)


def spectrum_matrix(w: np.ndarray, seed: int) -> torch.Tensor:
    Q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(w.size, w.size)))
    return torch.as_tensor(Q @ np.diag(w) @ Q.T)


@pytest.fixture(scope="module")
def mlp_hessians(small_data):
    spec = MLPSpec(2, 12, 3)
    eng = MLPEngine(spec, small_data, "dce", [0.5, 1.0], [5.0, 3.0], [20, 20])
    theta = spec.init([0, 1])
    for t in range(30):
        theta, _ = eng.step(theta, t)
    H = torch.stack([torch.as_tensor(dense_hessian(eng, theta, 30, r)) for r in range(2)])
    return eng, theta, H


def test_quadrature_moments_are_the_vectors_own(mlp_hessians):
    eng, theta, H = mlp_hessians
    n, M, V = H.shape[1], 12, 4
    for op in (dense_op(H), eng.hvp_block(theta, 30)):  # the dense matrices and the engine's operator
        q = slq(op, [3, 4], n, M, V, salt=30)
        v = probes([3, 4], V, n, salt=30)
        for k in range(2 * M):
            Hk = torch.linalg.matrix_power(H, k)
            want = torch.einsum("rvn,rmn,rvm->rv", v, Hk, v).mean(-1)
            scale = torch.linalg.eigvalsh(H).abs().amax(-1) ** k
            torch.testing.assert_close(q.moments(k) / scale, want / scale, rtol=0, atol=1e-11)


def test_the_density_approaches_the_dense_spectrum_as_vectors_grow():
    """Wasserstein-1 between the quadrature's distribution (nodes with weights, averaged over
    the vectors) and the dense eigenvalues', mean over five vector sets: measured 0.39, 0.068
    and 0.018 for V = 1, 16, 256 on this 172-dimensional spectrum (a bulk, a band, two outliers)."""
    w = np.concatenate([np.random.default_rng(0).normal(0, 0.1, 150), np.linspace(1, 3, 20), [12.0, 25.0]])
    H = spectrum_matrix(w, 1)[None]
    grid = np.linspace(-1, 27, 2801)
    dense_cdf = np.searchsorted(np.sort(w), grid, side="right") / w.size

    def w1(V, salt):
        q = slq(dense_op(H), [0], w.size, 40, V, salt=salt)
        nodes, weights = q.nodes[0].reshape(-1).numpy(), (q.weights[0] / V).reshape(-1).numpy()
        o = np.argsort(nodes)
        cdf = np.concatenate([[0.0], np.cumsum(weights[o])])[np.searchsorted(nodes[o], grid, side="right")]
        return float(np.abs(cdf - dense_cdf).sum() * (grid[1] - grid[0]))

    d = {V: np.mean([w1(V, s) for s in range(5)]) for V in (1, 16, 256)}
    assert d[256] < d[16] < d[1] and d[256] < 0.03, d
    rho = slq(dense_op(H), [0], w.size, 40, 16).smoothed(torch.as_tensor(grid), 0.05)[0].numpy()
    assert abs(rho.sum() * (grid[1] - grid[0]) - 1) < 1e-6  # a density: it integrates to one


@pytest.mark.parametrize(
    "case",
    ["negative outlier", "near-degenerate bottom pair", "mlp"],
)
def test_bottom_eigenvalues_match_the_dense_ones(case, mlp_hessians):
    if case == "mlp":
        eng, theta, H = mlp_hessians
        op, n = eng.hvp_block(theta, 30), H.shape[1]
    else:
        rng = np.random.default_rng(2)
        bulk = rng.uniform(0, 5, 198)
        bottom = [-8.0, -0.5] if case == "negative outlier" else [-1.0, -1.0 + 1e-4]
        H = torch.stack([spectrum_matrix(np.concatenate([bottom, bulk]), s) for s in (3, 4)])
        op, n = dense_op(H), 200
    res = bottomk_eigs(op, 2, seeds=[0, 1], n=n, tol=1e-8, max_iter=n)
    want = torch.linalg.eigvalsh(H)[:, :2]
    torch.testing.assert_close(res.eigvals, want, rtol=0, atol=1e-3)
    assert bool(res.converged[:, 0].all())
