"""Per-layer spectra against dense float64 Hessian blocks: known matrices, an MLP, a CNN."""

import numpy as np
import pytest
import torch

from landscape.curvature import quantities
from landscape.curvature.blocks import block_op, layer_blocks, layer_top_eigs
from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.engines.module import ModuleEngine
from landscape.problem.mlp import MLPSpec
from tests.landscape.engines.test_module import TinyCNN, images
from tests.reference import dense_hessian


def matrix_op(A):
    return lambda V, rows: torch.einsum("rij,rbj->rbi", A[rows], V)


def symmetric(R, n, seed):
    B = torch.randn(R, n, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return B + B.transpose(1, 2)


def test_layers_group_contiguous_parameters_of_one_module():
    pm = [["conv1.weight", [2, 1, 3, 3]], ["conv1.bias", [2]], ["scale", []], ["head.0.weight", [3, 8]]]
    pm += [["head.0.bias", [3]], ["a.weight", [2]], ["b.weight", [2]], ["a.bias", [1]]]
    got = layer_blocks(pm)
    assert [name for name, _ in got] == ["conv1", "scale", "head.0", "a", "b", "a"]
    assert [(s.start, s.stop) for _, s in got] == [(0, 20), (20, 21), (21, 48), (48, 50), (50, 52), (52, 53)]


def test_block_operator_is_the_diagonal_block():
    A = symmetric(2, 9, 0)
    sl = slice(3, 7)
    V = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = block_op(matrix_op(A), sl, 9)(V, torch.arange(2))
    torch.testing.assert_close(out, torch.einsum("rij,rbj->rbi", A[:, sl, sl], V))


@pytest.mark.parametrize("case", ["random", "degenerate", "tiny blocks", "negative"])
def test_layer_top_eigs_on_known_matrices(case):
    n, blocks = 12, [("a", slice(0, 5)), ("b", slice(5, 11)), ("c", slice(11, 12))]
    A = symmetric(3, n, 2)
    if case == "degenerate":  # block b's top eigenvalue is double, 1e-9 apart from a third
        Q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(5), dtype=torch.float64))
        A[:, 5:11, 5:11] = (
            Q @ torch.diag(torch.tensor([3.0, 3.0, 3.0 - 1e-9, 0.5, -1.0, -2.0], dtype=torch.float64)) @ Q.T
        )
    if case == "tiny blocks":
        blocks = [("a", slice(0, 1)), ("b", slice(1, 3)), ("c", slice(3, n))]
    if case == "negative":  # a block with only negative curvature: its top eigenvalue is negative
        A[:, :5, :5] = -torch.eye(5, dtype=torch.float64) * torch.arange(1.0, 6.0, dtype=torch.float64)
    res = layer_top_eigs(matrix_op(A), blocks, seeds=[0, 1, 2], n=n, tol=1e-10, max_iter=50)
    assert res.layers == tuple(b[0] for b in blocks)
    for r in range(3):
        want = [np.linalg.eigvalsh(A[r, s, s].numpy())[-1] for _, s in blocks]
        np.testing.assert_allclose(res.eigvals[r].numpy(), want, rtol=1e-8, atol=1e-9)
    assert bool(res.converged.all())
    # a replica alone gets the same answer
    alone = layer_top_eigs(matrix_op(A[2:]), blocks, seeds=[2], n=n, tol=1e-10, max_iter=50)
    torch.testing.assert_close(alone.eigvals, res.eigvals[2:], rtol=1e-10, atol=1e-12)


def test_mlp_layer_spectra_against_a_dense_hessian(small_data):
    spec = MLPSpec(2, 6, 3)
    eng = MLPEngine(spec, small_data, "dce", eta=[0.5, 1.0], amplitude=[5.0, 5.0], period=[20, 20])
    theta = spec.init([0, 1])
    for t in range(15):
        theta, _ = eng.step(theta, t)
    res = quantities.layer_spectra(eng, theta, 15, tol=1e-10, max_iter=200)
    assert res.layers == ("fc1", "fc2")
    full = top_k(eng, theta, 15, k=1, tol=1e-10, max_iter=200)
    for r in range(2):
        H = dense_hessian(eng, theta, 15, r)
        want = [np.linalg.eigvalsh(H[s, s])[-1] for _, s in layer_blocks(eng.param_map())]
        np.testing.assert_allclose(res.eigvals[r].numpy(), want, rtol=1e-8, atol=1e-10)
        assert np.all(res.eigvals[r].numpy() <= float(full.eigvals[r, 0]) + 1e-9)  # interlacing


def test_cnn_layer_spectra_and_trace_against_a_dense_hessian():
    eng = ModuleEngine(TinyCNN, [0, 1], images(), "dmse2", eta=[0.1, 0.1], amplitude=[5.0, 3.0], period=[10, 10])
    theta = eng.theta0.clone()
    for t in range(4):
        theta, _ = eng.step(theta, t)
    res = quantities.layer_spectra(eng, theta, 4, tol=1e-10, max_iter=200)
    tr = quantities.trace(eng, theta, 4, samples=1000)
    assert res.layers == ("conv", "fc")
    for r in range(2):
        H = dense_hessian(eng, theta, 4, r)
        want = [np.linalg.eigvalsh(H[s, s])[-1] for _, s in layer_blocks(eng.param_map())]
        np.testing.assert_allclose(res.eigvals[r].numpy(), want, rtol=1e-8, atol=1e-10)
        assert abs(float(tr.estimate[r]) - np.trace(H)) < 4 * float(tr.stderr[r])
