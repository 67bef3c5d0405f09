"""The full batch in chunks (`--chunk`): every quantity summed over chunks of examples equals
the whole batch's to round-off (1e-12 in float64), for the hand-written MLP passes and the
torch.func module engine; the top-k spectrum and the Gauss–Newton products included. The
oracle is the same engine without chunks (itself checked against the dense float64 Hessian in
test_derivatives.py and test_module.py), on a chunk size that leaves a short last chunk."""

import pytest
import torch

from landscape import LandscapeError
from landscape.config.run import RunConfig
from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.engines.module import ModuleEngine
from landscape.problem.mlp import MLPSpec
from tests import reference
from tests.landscape.engines.test_module import mlp_from_spec

KW = dict(eta=[0.3, 0.05], amplitude=[4.0, 9.0], period=[20, 30])
CLOSE = dict(rtol=1e-12, atol=1e-12)


def cnn(seed: int) -> torch.nn.Module:
    """A module the MLP engine cannot run: a 1-D convolution over the two spiral features."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 2)), torch.nn.Conv1d(1, 3, 2), torch.nn.Tanh(), torch.nn.Flatten(),
        torch.nn.Linear(3, 3),
    ).double()  # fmt: skip


def engines(kind, data, loss, chunk):
    if kind == "mlp-tanh":
        return MLPEngine(MLPSpec(2, 6, 3, depth=2, activation="tanh"), data, loss, **KW, chunk=chunk)
    if kind == "mlp-relu":
        return MLPEngine(MLPSpec(2, 7, 3), data, loss, **KW, chunk=chunk)
    make = mlp_from_spec(MLPSpec(2, 5, 3, depth=2)) if kind == "module-mlp" else cnn
    return ModuleEngine(make, [0, 1], data, loss, **KW, chunk=chunk)


@pytest.mark.parametrize("kind", ["mlp-tanh", "mlp-relu", "module-mlp", "module-cnn"])
@pytest.mark.parametrize("loss", ["dce", "dmse1", "dmse2"])
def test_chunked_equals_the_whole_batch(small_data, kind, loss):
    """30 training points in chunks of 7 (7, 7, 7, 7, 2): loss, static loss, accuracies, the
    gradient, the step, Hessian-vector products (block, a subset of replicas), the top-2 spectrum,
    Gauss–Newton products and a grid evaluation."""
    whole, parts = engines(kind, small_data, loss, 0), engines(kind, small_data, loss, 7)
    assert not whole.chunked and parts.chunked and len(parts.parts()) == 5
    assert sum(w for _, w in parts.parts()) == pytest.approx(1.0, abs=1e-15)
    theta = whole.init([0, 1]) if kind.startswith("mlp") else whole.theta0.clone()
    t = 13
    G = whole.gamma(t)
    torch.testing.assert_close(parts._gradient(theta, G), whole._gradient(theta, G), **CLOSE)
    new_w, m_w = whole.step(theta, t)
    new_p, m_p = parts.step(theta, t)
    torch.testing.assert_close(new_p, new_w, **CLOSE)
    for name in ("loss", "loss_static", "train_acc", "val_acc"):
        torch.testing.assert_close(getattr(m_p, name), getattr(m_w, name), **CLOSE)
    V = torch.randn(2, 3, theta.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    rows = torch.arange(2)
    torch.testing.assert_close(parts.hvp_block(theta, t)(V, rows), whole.hvp_block(theta, t)(V, rows), **CLOSE)
    one = torch.tensor([1])
    torch.testing.assert_close(parts.hvp_block(theta, t)(V[1:], one), whole.hvp_block(theta, t)(V[1:], one), **CLOSE)
    torch.testing.assert_close(parts.ggn_block(theta, t)(V, rows), whole.ggn_block(theta, t)(V, rows), **CLOSE)
    ev_w, ev_p = whole.evaluate_at(theta, t, replica=1), parts.evaluate_at(theta, t, replica=1)
    for name in ev_w:
        torch.testing.assert_close(ev_p[name], ev_w[name], **CLOSE)
    s_w = top_k(whole, theta, t, 2, tol=1e-12, max_iter=200)
    s_p = top_k(parts, theta, t, 2, tol=1e-12, max_iter=200)
    torch.testing.assert_close(s_p.eigvals, s_w.eigvals, rtol=1e-10, atol=1e-10)


def test_chunked_spectrum_against_the_dense_hessian(small_data):
    """The chunked operator's top-2 against the dense float64 Hessian of the plain forward."""
    eng = engines("mlp-tanh", small_data, "dce", 4)
    theta = eng.init([0, 1])
    s = top_k(eng, theta, 5, 2, tol=1e-12, max_iter=200)
    reference.assert_top_eigenvalues(s.eigvals, eng, theta, 5, rtol=1e-9, atol=1e-10)


def test_a_chunk_as_large_as_the_batch_is_the_whole_batch(small_data):
    eng = engines("mlp-relu", small_data, "dce", 30)
    assert not eng.chunked and eng.parts() == [(slice(None), 1.0)]


def test_chunks_take_the_eager_step_only(small_data):
    """The fused and compiled steps run the whole batch: one line, from the config and the engine."""
    with pytest.raises(LandscapeError, match="--chunk applies to the eager step and --model; --step fused"):
        RunConfig(chunk=100, step="fused").validate()
    with pytest.raises(LandscapeError, match="--chunk applies to the eager step"):
        MLPEngine(MLPSpec(2, 7, 3), small_data, "dce", **KW, chunk=7, step="fused")
    with pytest.raises(LandscapeError, match="chunk must be >= 0"):
        RunConfig(chunk=-1).validate()
    RunConfig(chunk=100).validate()
