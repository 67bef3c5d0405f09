"""Hutchinson's trace against dense traces: known matrices, an MLP and a CNN Hessian."""

import numpy as np
import torch

from landscape.curvature.trace import hutchinson_trace


def matrix_op(A):
    return lambda V, rows: torch.einsum("rij,rbj->rbi", A[rows], V)


def test_diagonal_matrices_are_exact():
    # Rademacher probes: zᵀDz = tr D for every z, so the estimate is exact with zero spread
    D = torch.diag_embed(torch.tensor([[1.0, -2.0, 5.0, 0.5], [3.0, 3.0, 3.0, 3.0]], dtype=torch.float64))
    res = hutchinson_trace(matrix_op(D), [0, 1], n=4, samples=5)
    torch.testing.assert_close(res.estimate, torch.tensor([4.5, 12.0], dtype=torch.float64))
    assert torch.all(res.stderr == 0)


def test_random_symmetric_matrices_within_the_standard_error():
    g = torch.Generator().manual_seed(3)
    B = torch.randn(3, 30, 30, generator=g, dtype=torch.float64)
    A = B + B.transpose(1, 2)
    res = hutchinson_trace(matrix_op(A), [0, 1, 2], n=30, samples=2000)
    true = torch.diagonal(A, dim1=1, dim2=2).sum(1)
    z = ((res.estimate - true) / res.stderr).abs()
    assert torch.all(z < 4), z
    # the variance is 2 Σ_{i≠j} A_ij²: the reported s.e. matches it
    off = (A**2).sum((1, 2)) - (torch.diagonal(A, dim1=1, dim2=2) ** 2).sum(1)
    torch.testing.assert_close(res.stderr, torch.sqrt(2 * off / 2000), rtol=0.1, atol=0)


def test_a_replica_alone_gets_the_same_estimate():
    g = torch.Generator().manual_seed(4)
    B = torch.randn(2, 10, 10, generator=g, dtype=torch.float64)
    A = B + B.transpose(1, 2)
    both = hutchinson_trace(matrix_op(A), [7, 9], n=10, samples=16, salt=3)
    alone = hutchinson_trace(matrix_op(A[1:]), [9], n=10, samples=16, salt=3)
    torch.testing.assert_close(both.estimate[1:], alone.estimate, rtol=0, atol=0)


def test_mlp_hessian_trace(small_data):
    from landscape.engines.mlp import MLPEngine
    from landscape.problem.mlp import MLPSpec
    from tests import reference

    spec = MLPSpec(2, 5, 3)
    eng = MLPEngine(spec, small_data, "dmse1", eta=[0.5], amplitude=[4.0], period=[20])
    theta = spec.init([0])
    for t in range(10):
        theta, _ = eng.step(theta, t)
    H = reference.dense_hessian(eng, theta, 10, 0)
    res = hutchinson_trace(eng.hvp_block(theta, 10), [0], n=spec.num_params, samples=4000)
    assert abs(float(res.estimate[0]) - np.trace(H)) < 4 * float(res.stderr[0])
