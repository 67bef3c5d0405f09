"""The batched update rules against `torch.optim` applied replica by replica in a plain loop
(float64, 2000 steps of a dynamical loss — 200 in the fast subset —, each replica its own
hyper-parameters, every gradient by autograd of the plain forward pass), and their
stability thresholds against a quadratic placed just below and just above each one."""

import numpy as np
import pytest
import torch

from landscape import LandscapeError
from landscape.engines.mlp import MLPEngine
from landscape.problem import losses
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec
from landscape.problem.optimizers import ADAPTIVE, Hyper, edge, init_state, preconditioner, update
from tests.reference import forward

R = 2
f64 = lambda *v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
CASES = {  # the batched rule's hyper-parameters, and torch.optim's for replica r
    "gd": (Hyper(f64(0.5, 1.0)), lambda p, r: torch.optim.SGD([p], lr=(0.5, 1.0)[r], foreach=False)),
    "momentum": (
        Hyper(f64(0.1, 0.05), beta=f64(0.5, 0.9)),
        lambda p, r: torch.optim.SGD([p], lr=(0.1, 0.05)[r], momentum=(0.5, 0.9)[r], foreach=False),
    ),
    "nesterov": (
        Hyper(f64(0.1, 0.05), beta=f64(0.5, 0.9)),
        lambda p, r: torch.optim.SGD([p], lr=(0.1, 0.05)[r], momentum=(0.5, 0.9)[r], nesterov=True, foreach=False),
    ),
    "rmsprop": (
        Hyper(f64(1e-3, 3e-3), alpha=f64(0.9, 0.99), eps=f64(1e-8, 1e-6)),
        lambda p, r: torch.optim.RMSprop([p], lr=(1e-3, 3e-3)[r], alpha=(0.9, 0.99)[r], eps=(1e-8, 1e-6)[r],
                                         foreach=False),
    ),
    "adam": (
        Hyper(f64(1e-3, 2e-3), beta1=f64(0.9, 0.8), beta2=f64(0.999, 0.99), eps=f64(1e-8, 1e-6)),
        lambda p, r: torch.optim.Adam([p], lr=(1e-3, 2e-3)[r], betas=((0.9, 0.999), (0.8, 0.99))[r],
                                      eps=(1e-8, 1e-6)[r], foreach=False),
    ),
}  # fmt: skip


def gradient(eng: MLPEngine, theta_r: torch.Tensor, t: int, r: int) -> torch.Tensor:
    """∇F_t of replica r alone, by autograd of the plain forward pass (tests.reference)."""
    th = theta_r.detach().clone().requires_grad_()
    f = forward(eng.spec, th[None], eng.X)
    losses.loss(eng.loss_name, f, eng.y, eng.Y, eng.gamma(t)[r : r + 1])[0].backward()
    return th.grad


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "name, loss, steps",
    [(n, "dce", 200) for n in CASES]
    + [pytest.param(n, "dce", 2000, marks=SLOW) for n in CASES]
    + [pytest.param("adam", "dmse1", 2000, marks=SLOW), pytest.param("momentum", "dmse2", 2000, marks=SLOW)],
)
def test_each_rule_is_torch_optim_replica_by_replica(name, loss, steps):
    data = spiral_dataset(10, seed=0, val_seed=1)
    spec = MLPSpec(2, 4, 3)
    eng = MLPEngine(spec, data, loss, eta=[0.1] * R, amplitude=[5.0, 9.0], period=[50, 80])
    h, make = CASES[name]
    theta = spec.init([0, 1])
    state = init_state(name, theta)
    params = [torch.nn.Parameter(theta[r].clone()) for r in range(R)]
    opts = [make(p, r) for r, p in enumerate(params)]
    for t in range(steps):
        g = torch.stack([gradient(eng, theta[r], t, r) for r in range(R)])
        theta, state = update(name, theta, g, state, h, t + 1)
        for r, (p, opt) in enumerate(zip(params, opts)):
            p.grad = gradient(eng, p, t, r)
            opt.step()
    want = torch.stack([p.detach() for p in params])
    assert torch.isfinite(want).all()
    torch.testing.assert_close(theta, want, rtol=1e-12, atol=1e-12)
    if name in ADAPTIVE:  # the preconditioner from the state torch.optim kept
        P = preconditioner(name, state, h, steps)
        key = "square_avg" if name == "rmsprop" else "exp_avg_sq"
        s = torch.stack([opt.state[p][key] for p, opt in zip(params, opts)])
        torch.testing.assert_close(state["s"], s, rtol=1e-12, atol=0)
        assert P is not None and (P > 0).all()


def quadratic_run(name: str, a: float, h: Hyper, steps: int, s0: float | None = None) -> np.ndarray:
    """θ_t of the rule on F = a θ² / 2 from θ = 1 (one coordinate per replica); an adaptive
    rule's second moment starts at s0 and is frozen (α = 1 or β2 = 1), so P = √s0 + ε."""
    theta = torch.ones(R, 1, dtype=torch.float64)
    state = init_state(name, theta)
    if s0 is not None:
        state["s"] = torch.full_like(theta, s0)
    out = []
    for k in range(1, steps + 1):
        theta, state = update(name, theta, a * theta, state, h, k)
        out.append(theta[:, 0].clone())
    return torch.stack(out, 1).numpy()


@pytest.mark.parametrize("name", ["gd", "momentum", "nesterov", "rmsprop", "adam"])
@pytest.mark.parametrize("beta", [0.5, 0.9])
def test_the_thresholds_on_a_quadratic(name, beta):
    """Replica 0 2 % below the threshold, replica 1 2 % above: the first decays, the second
    grows flipping sign every step (period 2, the eigenvalue −1), for the rule's own edge."""
    eta = f64(0.1, 0.1)
    b = f64(beta, beta)
    s0, eps = 4.0, f64(1e-8, 1e-8)
    P = np.sqrt(s0) + 1e-8 if name in ADAPTIVE else 1.0
    hyper = {
        "gd": Hyper(eta), "momentum": Hyper(eta, beta=b), "nesterov": Hyper(eta, beta=b),
        "rmsprop": Hyper(eta, alpha=f64(1.0, 1.0), eps=eps),
        "adam": Hyper(eta, beta1=b, beta2=f64(1.0, 1.0), eps=eps, bias_correction=False),
    }[name]  # fmt: skip
    threshold = float(edge(name, eta, beta=b, beta1=b)[0]) * P  # on the curvature of H itself
    runs = [quadratic_run(name, threshold * f, hyper, 4000, s0 if name in ADAPTIVE else None)[i]
            for i, f in enumerate((0.98, 1.02))]  # fmt: skip
    below, above = runs
    assert abs(below[-1]) < 1e-3, (name, below[-1])
    grown = np.flatnonzero(np.abs(above) > 1e3)
    assert grown.size, (name, above[-1])
    tail = above[grown[0] - 10 : grown[0] + 1]  # up to where it passed 10³ (it overflows later)
    assert np.all(tail[1:] * tail[:-1] < 0), tail  # period 2: the sign flips every step


def test_an_unknown_optimizer_is_one_line():
    with pytest.raises(LandscapeError, match="unknown optimizer 'sgdw'"):
        init_state("sgdw", torch.zeros(1, 2))


def ramp_run(name: str, h: Hyper, edge_: float, lo: float, hi: float, steps: int, s0, seed: int) -> np.ndarray:
    """θ_t of the rule on F = a(t) θ² / 2, the curvature ramped linearly from lo to hi times the
    rule's threshold (progressive sharpening), with a 1e-8 noise in the gradient (the floor a
    real run's bounce grows from); an adaptive rule's second moment frozen at s0."""
    rng = np.random.default_rng(seed)
    theta = torch.ones(1, 1, dtype=torch.float64)
    state = init_state(name, theta)
    if s0 is not None:
        state["s"] = torch.full_like(theta, s0)
    out = np.empty(steps)
    for k in range(1, steps + 1):
        a = edge_ * (lo + (hi - lo) * (k - 1) / steps)
        theta, state = update(name, theta, a * theta + 1e-8 * float(rng.standard_normal()), state, h, k)
        out[k - 1] = float(theta[0, 0])
    return np.clip(out, -1e6, 1e6)


@pytest.mark.parametrize("name", ["gd", "momentum", "nesterov", "rmsprop", "adam"])
@pytest.mark.parametrize("beta", [0.5, 0.9])
def test_the_detector_finds_each_rule_at_its_own_threshold(name, beta):
    """A curvature ramped through the rule's own threshold (crossing at step 2000 of 4000): the
    Fig. 4 detector dates the first instability within 100 steps of the crossing (the curvature
    within 1 % of the threshold; near β = 0.9 the slowly damped bounce can show a few dozen
    steps early) — for momentum that is (2 + 2β)/η, not gradient descent's 2/η, which the ramp
    is above from its start. Ramped to 0.98 of the threshold: no instability (two noise seeds)."""
    from landscape.analysis.bifurcations import detect_series

    eta, b, eps, s0 = f64(0.1), f64(beta), f64(1e-8), 4.0
    hyper = {
        "gd": Hyper(eta), "momentum": Hyper(eta, beta=b), "nesterov": Hyper(eta, beta=b),
        "rmsprop": Hyper(eta, alpha=f64(1.0), eps=eps),
        "adam": Hyper(eta, beta1=b, beta2=f64(1.0), eps=eps, bias_correction=False),
    }[name]  # fmt: skip
    adaptive = name in ADAPTIVE
    P = np.sqrt(s0) + 1e-8 if adaptive else 1.0
    edge_ = float(edge(name, eta, beta=b, beta1=b)[0]) * P  # on the curvature of H itself
    for seed in (0, 1):
        x = ramp_run(name, hyper, edge_, 0.8, 1.2, 4000, s0 if adaptive else None, seed)
        first = float(detect_series(x).first_instability.values)
        assert 1900 <= first <= 2100, (name, beta, seed, first)
        x = ramp_run(name, hyper, edge_, 0.7, 0.98, 4000, s0 if adaptive else None, seed)
        assert np.isnan(float(detect_series(x).first_instability.values)), (name, beta, seed)
