"""The tap tables of a user's network (engines/graph.py) and their C forward, against the module's
own torch forward: every layer the tables read, every loss, and the networks they must refuse."""

import numpy as np
import pytest
import torch
import torch.nn.functional as Fn
from torch import nn

from landscape.engines import fused, graph, module
from landscape.engines.base import ReplicaEngine
from landscape.engines.module import ModuleEngine
from landscape.problem import losses
from landscape.problem.data import Dataset

pytestmark = pytest.mark.skipif(fused.compiler() is None, reason="the C forward needs a C++ compiler")

LOSSES = ["ce", "dce", "mse", "dmse1", "dmse2"]
REAL_PROGRAM = graph.program


class Net(nn.Module):
    """A chain with the reshapes and functional activations user code writes."""

    def __init__(self, body: nn.Module, shape: tuple, tail: str = "flatten"):
        super().__init__()
        self.body, self.shape, self.tail = body, shape, tail

    def forward(self, x):
        h = self.body[0](x.reshape(-1, *self.shape))
        for layer in self.body[1:]:
            h = torch.tanh(layer(Fn.relu(h).flatten(1) if isinstance(layer, nn.Linear) else Fn.relu(h)))
        return h


class Sized(nn.Module):
    """The flatten idioms that ask the batch's size."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 2, 3), nn.Linear(2 * 16, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x.view(x.shape[0], 1, 6, 6)))
        return self.fc(h.view(h.size(0), -1))


NETWORKS = {  # name: (factory of a float64 module, per-sample input shape, classes)
    "mlp": (
        lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4, bias=False), nn.ReLU(), nn.Linear(4, 3)),
        (6,),
        3,
    ),
    "conv": (
        lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 25, 4)),
        (2, 5, 5),
        4,
    ),
    "strided, dilated, grouped, unpadded": (
        lambda: nn.Sequential(
            nn.Conv2d(2, 4, 3, stride=2, padding=2, dilation=2),
            nn.Tanh(),
            nn.Conv2d(4, 4, (2, 3), groups=2, padding="valid", bias=False),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 3 * 1, 3),
        ),  # fmt: skip
        (2, 7, 6),
        3,
    ),
    "unflattened": (
        lambda: nn.Sequential(nn.Unflatten(1, (1, 4, 4)), nn.Conv2d(1, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(8, 3)),
        (16,),
        3,
    ),
    "sizes asked": (lambda: Sized(), (1, 6, 6), 3),
    "functional, reshaped input": (
        lambda: Net(
            nn.ModuleList([nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3, stride=2), nn.Linear(2 * 2 * 2, 3)]), (1, 8, 8)
        ),
        (64,),
        3,
    ),
}


def draw(name: str, P: int = 41, seed: int = 0):
    make, shape, C = NETWORKS[name]
    torch.manual_seed(seed)
    net = make().double()
    X = torch.randn(P, *shape, dtype=torch.float64)
    y = torch.arange(P) % C
    return net, X, y, C


def flat(net: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def torch_values(net, theta, X, y, C, loss, G, Xv=None, yv=None):
    """F, static loss, both accuracies of the module at each θ row, by its own forward."""
    out = []
    for th, g in zip(theta, G):
        torch.nn.utils.vector_to_parameters(th, net.parameters())
        with torch.no_grad():
            f = net(X)[None]
            Y = Fn.one_hot(y, C).double()
            row = [losses.loss(loss, f, y, Y, g[None])[0], losses.loss(losses.STATIC[loss], f, y, Y, g[None])[0]]
            row.append((f[0].argmax(-1) == y).double().mean())
            row.append((net(Xv).argmax(-1) == yv).double().mean() if Xv is not None else torch.tensor(float("nan")))
        out.append(torch.stack([torch.as_tensor(v, dtype=torch.float64) for v in row]))
    return torch.stack(out, dim=1)


@pytest.mark.parametrize("name", list(NETWORKS))
@pytest.mark.parametrize("loss", LOSSES)
def test_the_tables_forward_equals_the_modules_own(name, loss):
    net, X, y, C = draw(name)
    Xv, yv = X[:17] * 1.5, (y[:17] + 1) % C
    prog = graph.program(net, tuple(X.shape[1:]), C)
    assert not isinstance(prog, str), prog
    kernel = graph.GraphKernel(prog, X, y, C, loss, Xv, yv)
    theta = flat(net) + 0.4 * torch.randn(6, flat(net).numel(), dtype=torch.float64)
    G = 0.5 + torch.rand(6, C, dtype=torch.float64)
    got = torch.stack(kernel.evaluate(theta, G))
    want = torch_values(net, theta, X, y, C, loss, G, Xv, yv)
    torch.testing.assert_close(got[:2], want[:2], rtol=1e-13, atol=0)
    torch.testing.assert_close(got[2:], want[2:], rtol=0, atol=0)


def test_rows_are_independent_of_their_batch_and_threads_and_a_non_finite_row_is_nan():
    net, X, y, C = draw("conv", P=70)
    kernel = graph.GraphKernel(graph.program(net, (2, 5, 5), C), X, y, C, "dce", X[:9], y[:9])
    theta = flat(net) + 0.3 * torch.randn(9, flat(net).numel(), dtype=torch.float64)
    theta[4, 7] = float("inf")
    G = torch.ones(9, C, dtype=torch.float64)
    torch.set_num_threads(1)
    whole = torch.stack(kernel.evaluate(theta, G))
    torch.set_num_threads(2)
    split = torch.cat([torch.stack(kernel.evaluate(theta[i : i + 2], G[i : i + 2])) for i in range(0, 9, 2)], dim=1)
    torch.testing.assert_close(split, whole, rtol=0, atol=0, equal_nan=True)
    assert whole[:, 4].isnan().all() and not whole[:, [3, 5]].isnan().any()
    with pytest.raises(ValueError, match="do not fit"):  # a θ too short for the tables: refused, not read past
        kernel.evaluate(theta[:, :-1], G)


@pytest.mark.parametrize(
    "make, why",
    [
        (lambda: nn.Sequential(nn.LayerNorm(6), nn.Linear(6, 3)), "LayerNorm is not a layer"),
        (lambda: nn.Sequential(nn.Linear(6, 6), nn.Softplus(), nn.Linear(6, 3)), "Softplus is not a layer"),
        (lambda: nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(6, 3)), "does not follow a Linear"),
        (lambda: nn.Sequential(nn.Dropout(0.0), nn.Linear(6, 3)), "Dropout is not a layer"),
        (lambda: nn.Sequential(nn.Linear(6, 4)), "not the chain's (samples, classes) logits"),
    ],
)
def test_what_the_tables_cannot_express_is_refused_with_a_reason(make, why):
    assert why in graph.program(make().double(), (6,), 3)


class Skip(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)) + x)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 3)

    def forward(self, x):
        return self.a(x) if x.sum() > 0 else -self.a(x)


class Mixing(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 3)

    def forward(self, x):
        return self.a(x).mean(0, keepdim=True).expand(x.shape[0], 3)


@pytest.mark.parametrize(
    "cls, why", [(Skip, "skip connection"), (Branchy, "cannot trace"), (Mixing, "mixes the samples")]
)
def test_networks_that_are_not_chains_are_refused(cls, why):
    assert why in graph.program(cls().double(), (6,), 3)


def digits(n=60, seed=0) -> Dataset:
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, 64)), np.arange(n) % 3
    return Dataset(X[:40], y[:40], X[40:], y[40:], 3, "random 8×8 images")


def small_cnn(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return Net(
        nn.ModuleList([nn.Conv2d(1, 3, 3, padding=1), nn.Conv2d(3, 2, 3, stride=2), nn.Linear(2 * 9, 3)]), (1, 8, 8)
    ).double()


@pytest.fixture
def tables_faster(monkeypatch):
    """The engine's speed check decided for the tables (its timing is not the test's subject)."""
    monkeypatch.setattr(module, "_seconds_per_point", lambda engine, kernel: (2e-3, 1e-3))


@pytest.mark.parametrize("loss", LOSSES)
def test_a_module_engines_views_go_through_the_tables_and_equal_its_training_pass(loss, tables_faster):
    """evaluate_at through the C forward equals the engine's vmap pass and its training step's
    metrics at the same θ (the forward-only path of a view against the step's)."""
    eng = ModuleEngine(small_cnn, [0, 1], digits(), loss, [0.1, 0.1], [3.0, 3.0], [10, 10])
    assert eng._evaluation_kernel() is not None, eng.graph_refusal
    assert eng.evaluation_batch(2601) == 2601
    theta = eng.theta0
    for t in range(3):
        theta, _ = eng.step(theta, t)
    rows = theta[1] + 0.2 * torch.randn(5, eng.num_params, dtype=torch.float64)
    rows[0] = theta[1]
    got = eng.evaluate_at(rows, 3, replica=1)
    G = eng.gamma(3)[1:2].expand(5, -1)
    want = ReplicaEngine._evaluate_batch(eng, rows, G)
    for name, w in zip(("loss", "loss_static", "train_acc", "val_acc"), want):
        torch.testing.assert_close(got[name], w, rtol=1e-14 if "acc" not in name else 0, atol=0)
    _, m = eng.step(theta, 3)
    for name in ("loss", "loss_static", "train_acc", "val_acc"):
        torch.testing.assert_close(got[name][0], getattr(m, name)[1], rtol=1e-14, atol=0)


def test_a_module_the_tables_misread_falls_back_to_vmap(monkeypatch, tables_faster):
    """A program that does not compute what the module does (here another network's tables) is
    caught by the check at θ0, and the views go through vmap with the right values."""
    other = nn.Sequential(nn.Flatten(), nn.Linear(64, 3)).double()
    monkeypatch.setattr(graph, "program", lambda *a, **k: REAL_PROGRAM(other, (64,), 3))
    eng = ModuleEngine(small_cnn, [0], digits(), "dce", [0.1], [3.0], [10])
    assert eng._evaluation_kernel() is None and "differs" in eng.graph_refusal
    assert eng.evaluation_batch(2601) == 16
    rows = eng.theta0 + 0.1 * torch.randn(3, eng.num_params, dtype=torch.float64)
    got = eng.evaluate_at(rows, 0)["loss"]
    want = ReplicaEngine._evaluate_batch(eng, rows, eng.gamma(0)[:1].expand(3, -1))[0]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_tables_slower_than_the_modules_own_forward_are_not_used(monkeypatch):
    """Wide dense layers run faster as the module's GEMMs: the engine keeps the vmap path and
    says why; the views' values are the module's."""
    calls = []

    def slower(engine, kernel):
        calls.append(kernel)
        return 1e-3, 2e-3

    monkeypatch.setattr(module, "_seconds_per_point", slower)
    eng = ModuleEngine(small_cnn, [0], digits(), "dce", [0.1], [3.0], [10])
    assert eng._evaluation_kernel() is None and "slower here (2 ms a point against 1 ms)" in eng.graph_refusal
    assert len(calls) == 1 and isinstance(calls[0], graph.GraphKernel) and eng.evaluation_batch(2601) == 16


def test_the_speed_check_times_both_paths_on_a_batch_of_16():
    eng = ModuleEngine(small_cnn, [0], digits(), "dce", [0.1], [3.0], [10])
    kernel = graph.GraphKernel(REAL_PROGRAM(eng.base, (64,), 3, None), eng.X, eng.y, 3, "dce")
    ours, mine = module._seconds_per_point(eng, kernel)
    assert 0 < ours < 1 and 0 < mine < 1


def test_a_module_without_tables_keeps_batches_of_16_and_says_why():
    ln = lambda s: nn.Sequential(nn.LayerNorm(64), nn.Linear(64, 3)).double()
    eng = ModuleEngine(ln, [0], digits(), "dce", [0.1], [3.0], [10])
    assert eng._evaluation_kernel() is None and "LayerNorm" in eng.graph_refusal
    assert eng.evaluation_batch(2601) == 16


def test_float32_tables_agree_with_float64_to_float32_rounding():
    net, X, y, C = draw("conv")
    prog = graph.program(net, (2, 5, 5), C)
    theta = flat(net) + 0.3 * torch.randn(4, flat(net).numel(), dtype=torch.float64)
    G = torch.ones(4, C, dtype=torch.float64)
    k64 = graph.GraphKernel(prog, X, y, C, "dce")
    k32 = graph.GraphKernel(prog, X.float(), y, C, "dce")
    a, b = k64.evaluate(theta, G)[0], k32.evaluate(theta.float(), G.float())[0]
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, rtol=1e-5, atol=0)
