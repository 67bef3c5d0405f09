"""Batched Lanczos against numpy/scipy on known matrices and on dense float64 Hessians."""

import numpy as np
import pytest
import scipy.linalg
import torch

from landscape.eigen import lanczos_topk
from landscape.model import MLPSpec
from landscape.engine import Engine
from tests.landscape.test_derivatives import dense_hessian


def random_sym(R, n, seed):
    rng = np.random.RandomState(seed)
    mats = []
    for _ in range(R):
        Q, _ = np.linalg.qr(rng.randn(n, n))
        ev = np.concatenate([[12.0, 9.0, 7.5], rng.uniform(-3, 3, n - 3)])
        mats.append(Q @ np.diag(ev) @ Q.T)
    return torch.tensor(np.stack(mats))


def test_lanczos_on_known_spectra():
    A = random_sym(4, 60, 0)
    mv = lambda V: torch.einsum("rij,rj->ri", A, V)
    v0 = torch.randn(4, 60, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    res = lanczos_topk(mv, v0, k=3, tol=1e-10, max_iter=60)
    for r in range(4):
        w, U = scipy.linalg.eigh(A[r].numpy())
        np.testing.assert_allclose(res.eigvals[r].numpy(), w[::-1][:3], rtol=1e-9)
        for i in range(3):
            assert abs(res.eigvecs[r, i].numpy() @ U[:, -1 - i]) == pytest.approx(1, abs=1e-8)
    # residuals are the true ones and the flags agree with them
    true = (torch.einsum("rij,rkj->rki", A, res.eigvecs) - res.eigvals[..., None] * res.eigvecs).norm(dim=-1)
    torch.testing.assert_close(res.residuals, true, rtol=1e-6, atol=1e-12)
    assert bool(res.converged.all())


def test_early_stop_reports_unconverged():
    A = random_sym(2, 80, 1)
    mv = lambda V: torch.einsum("rij,rj->ri", A, V)
    res = lanczos_topk(mv, torch.ones(2, 80, dtype=torch.float64), k=2, tol=1e-12, max_iter=4)
    assert res.iterations == 4 and not bool(res.converged.all())
    true = (torch.einsum("rij,rkj->rki", A, res.eigvecs) - res.eigvals[..., None] * res.eigvecs).norm(dim=-1)
    torch.testing.assert_close(res.residuals, true, rtol=1e-6, atol=1e-12)


def test_invariant_start_subspace_restarts():
    A = torch.diag(torch.arange(1.0, 21.0, dtype=torch.float64)).unsqueeze(0)
    mv = lambda V: torch.einsum("rij,rj->ri", A, V)
    v0 = torch.zeros(1, 20, dtype=torch.float64)
    v0[0, 3] = 1.0  # an eigenvector: the Krylov space closes after one step
    res = lanczos_topk(mv, v0, k=2, tol=1e-10, max_iter=20)
    np.testing.assert_allclose(res.eigvals[0].numpy(), [20.0, 19.0], rtol=1e-9)


@pytest.mark.parametrize("loss", ["dce", "dmse1", "dmse2"])
def test_spectrum_matches_dense_hessian(small_data, loss):
    spec = MLPSpec(2, 10, 3)
    R = 3
    eng = Engine(spec, small_data, loss, [1.0] * R, [10.0] * R, [60] * R)
    theta = spec.init(range(R))
    theta = eng.advance(theta, 0, 40)  # somewhere along a trajectory
    t = 40
    res = eng.spectrum(theta, t, k=2, tol=1e-9, max_iter=200)
    vector_checks = 0
    for r in range(R):
        H = dense_hessian(eng, theta, t, r).numpy()
        w, U = scipy.linalg.eigh(H)
        np.testing.assert_allclose(res.eigvals[r].numpy(), w[::-1][:2], rtol=1e-8)
        V = res.eigvecs[r].numpy().T
        # every pair is an eigenpair of the dense Hessian, degenerate or not
        np.testing.assert_allclose(H @ V, V * res.eigvals[r].numpy(), atol=1e-7 * w[-1])
        # and it is the eigenvector scipy finds wherever the eigenvalue is isolated
        gaps = [w[-1] - w[-2], min(w[-1] - w[-2], w[-2] - w[-3])]
        for i in range(2):
            if gaps[i] > 1e-3 * w[-1]:
                vector_checks += 1
                assert abs(V[:, i] @ U[:, -1 - i]) == pytest.approx(1, abs=1e-6)
    assert bool(res.converged.all())
    if loss == "dce":  # CE Hessians have isolated top eigenvalues here: the check must have run
        assert vector_checks >= 2


def test_warm_start_needs_fewer_products(small_data):
    spec = MLPSpec(2, 20, 3)
    eng = Engine(spec, small_data, "dce", [1.0] * 2, [10.0] * 2, [60] * 2)
    theta = eng.advance(spec.init([0, 1]), 0, 30)
    cold = eng.spectrum(theta, 30, k=2, tol=1e-4, seed=0)
    theta2 = eng.advance(theta, 30, 35)
    warm = eng.spectrum(theta2, 35, k=2, v0=cold.eigvecs.sum(1), tol=1e-4)
    cold2 = eng.spectrum(theta2, 35, k=2, tol=1e-4, seed=1)
    assert warm.iterations < cold2.iterations
    torch.testing.assert_close(warm.eigvals, cold2.eigvals, rtol=1e-6, atol=0)
