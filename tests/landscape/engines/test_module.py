"""The generic torch.func engine: against the fast MLP engine on the same MLP (its oracle),
and its Hessian-vector products and spectra against a dense float64 Hessian on a small CNN."""

import numpy as np
import pytest
import torch

from landscape import LandscapeError
from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.engines.module import ModuleEngine
from landscape.problem.data import Dataset
from landscape.problem.mlp import MLPSpec
from tests import reference


def mlp_from_spec(spec: MLPSpec):
    """A factory of nn.Sequential MLPs initialised exactly as MLPSpec.init(seed)."""

    def make(seed: int) -> torch.nn.Module:
        theta = spec.init([seed])
        layers, mods = spec.unflatten(theta), []
        for i, (W, b) in enumerate(layers):
            lin = torch.nn.Linear(W.shape[1], W.shape[2], dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(W[0].T)
                lin.bias.copy_(b[0])
            mods.append(lin)
            if i < len(layers) - 1:
                mods.append(torch.nn.ReLU() if spec.activation == "relu" else torch.nn.Tanh())
        return torch.nn.Sequential(*mods)

    return make


def to_spec_layout(eng: ModuleEngine, theta: torch.Tensor) -> torch.Tensor:
    """θ of the generic engine (nn.Linear weights are out × in) in MLPSpec's flat layout."""
    p = eng.unflatten(theta)
    parts = []
    for name in eng.names:
        v = p[name]
        parts.append((v.transpose(1, 2) if v.dim() == 3 else v).reshape(theta.shape[0], -1))
    return torch.cat(parts, dim=1)


@pytest.mark.parametrize("loss", ["dce", "dmse1", "dmse2"])
def test_generic_equals_the_fast_engine_on_the_mlp(small_data, loss):
    spec = MLPSpec(2, 7, 3, depth=2)
    kw = dict(eta=[0.3, 0.05], amplitude=[4.0, 9.0], period=[20, 30], static_from=[25, 30])  # Γ = 1 from there
    fast = MLPEngine(spec, small_data, loss, **kw)
    gen = ModuleEngine(mlp_from_spec(spec), [0, 1], small_data, loss, **kw)
    th_f, th_g = spec.init([0, 1]), gen.theta0.clone()
    torch.testing.assert_close(to_spec_layout(gen, th_g), th_f, rtol=0, atol=0)
    for t in range(40):
        th_f, m_f = fast.step(th_f, t)
        th_g, m_g = gen.step(th_g, t)
        for name in ("loss", "loss_static", "train_acc", "val_acc"):
            torch.testing.assert_close(getattr(m_g, name), getattr(m_f, name), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(to_spec_layout(gen, th_g), th_f, rtol=1e-10, atol=1e-12)
    # replay arithmetic is the step's: bit for bit
    torch.testing.assert_close(gen.advance(gen.theta0.clone(), 0, 40), th_g, rtol=0, atol=0)
    # spectra: the same eigenvalues (eigenvectors differ only by the parameter layout)
    a = top_k(fast, th_f, 40, k=2, tol=1e-9, max_iter=200)
    b = top_k(gen, th_g, 40, k=2, tol=1e-9, max_iter=200)
    torch.testing.assert_close(b.eigvals, a.eigvals, rtol=1e-8, atol=1e-10)


class TinyCNN(torch.nn.Module):
    def __init__(self, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv2d(1, 2, 3, dtype=torch.float64)
        self.fc = torch.nn.Linear(2 * 2 * 2, 3, dtype=torch.float64)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.5)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x.reshape(-1, 1, 4, 4))).flatten(1))


def images(n=24, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 16))
    y = np.arange(n) % 3
    return Dataset(X, y, None, None, 3, "random 4×4 images")


def test_cnn_hvp_and_spectrum_against_a_dense_hessian():
    data = images()
    eng = ModuleEngine(TinyCNN, [0, 1], data, "dce", eta=[0.1, 0.1], amplitude=[5.0, 5.0], period=[10, 10])
    theta = eng.theta0.clone()
    for t in range(5):
        theta, _ = eng.step(theta, t)
    n = eng.num_params
    V = torch.randn(2, 3, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    HV = eng.hvp_block(theta, 5)(V, torch.arange(2))
    for r in range(2):
        H = reference.dense_hessian(eng, theta, 5, r)
        np.testing.assert_allclose(HV[r].numpy(), V[r].numpy() @ H.T, rtol=1e-9, atol=1e-11)
    res = top_k(eng, theta, 5, k=2, tol=1e-10, max_iter=n)
    reference.assert_top_eigenvalues(res.eigvals, eng, theta, 5, rtol=1e-8, atol=1e-10)


def test_models_with_buffers_and_wrong_outputs_are_refused(small_data):
    bn = lambda s: torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 3))
    with pytest.raises(LandscapeError, match="buffers"):
        ModuleEngine(bn, [0], small_data, "dce", [1.0], [2.0], [10])
    wrong = ModuleEngine(lambda s: torch.nn.Linear(2, 5), [0], small_data, "dce", [1.0], [2.0], [10])
    with pytest.raises(LandscapeError, match=r"must return \(inputs, 3\) logits"):
        wrong.step(wrong.theta0, 0)
