import numpy as np
import pytest
import torch

from landscape.problem import losses


@pytest.fixture
def case():
    rng = np.random.RandomState(3)
    R, P, C = 2, 5, 3
    f = rng.randn(R, P, C)
    y = rng.randint(0, C, P)
    G = rng.uniform(0.1, 2.5, (R, C))
    return f, y, G


def hand(name, f, y, G):
    """The spec's formulas, written as loops."""
    R, P, C = f.shape
    out = np.zeros(R)
    for r in range(R):
        tot = 0.0
        for j in range(P):
            z = f[r, j]
            nll = -(z[y[j]] - np.log(np.exp(z).sum()))
            Y = np.eye(C)[y[j]]
            if name == "ce":
                tot += nll
            elif name == "dce":
                tot += G[r, y[j]] * nll
            elif name == "mse":
                tot += ((z - Y) ** 2).sum()
            elif name == "dmse1":
                tot += G[r, y[j]] * ((z - Y) ** 2).sum()
            elif name == "dmse2":
                tot += ((z - G[r] * Y) ** 2).sum()
        out[r] = tot / P
    return out


@pytest.mark.parametrize("name", losses.LOSSES)
def test_loss_against_hand_computation(case, name):
    f, y, G = case
    t = lambda a, dt=torch.float64: torch.tensor(a, dtype=dt)
    yt = t(y, torch.long)
    Y = torch.nn.functional.one_hot(yt, 3).double()
    got = losses.loss(name, t(f), yt, Y, t(G)).numpy()
    np.testing.assert_allclose(got, hand(name, f, y, G), rtol=1e-12)


def test_dynamical_losses_reduce_to_static_when_gamma_is_one(case):
    f, y, _ = case
    t = torch.tensor
    ones = torch.ones(2, 3, dtype=torch.float64)
    Y = torch.nn.functional.one_hot(t(y), 3).double()
    for dyn, stat in [("dce", "ce"), ("dmse1", "mse"), ("dmse2", "mse")]:
        a = losses.loss(dyn, t(f), t(y), Y, ones)
        b = losses.loss(stat, t(f), t(y), Y, ones)
        torch.testing.assert_close(a, b, rtol=1e-14, atol=0)
        assert losses.STATIC[dyn] == stat


def test_unknown_loss():
    with pytest.raises(KeyError, match="dmse1"):
        losses.loss("hinge", None, None, None, None)


def _head_case(name, dtype, R=3, P=40, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = 3 * torch.randn(R, P, C, dtype=dtype, generator=g)
    y = torch.randint(0, C, (P,), generator=g)
    Y = torch.nn.functional.one_hot(y, C).to(dtype)
    G = 40 * torch.rand(R, C, dtype=dtype, generator=g)
    return f, losses.Head(name, y, Y, G)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", losses.LOSSES)
def test_closed_form_gradient_is_autograds_bit_for_bit(name, dtype):
    """Same value and the same rounding as autograd: trajectories do not change."""
    for seed, shape in enumerate([(3, 40, 4), (1, 7, 3), (16, 300, 3)]):
        f, head = _head_case(name, dtype, *shape, seed=seed)
        fr = f.clone().requires_grad_(True)
        F = head(fr)
        (g,) = torch.autograd.grad(F.sum(), fr)
        F2, g2 = head.value_and_grad(f)
        assert torch.equal(F.detach(), F2)
        assert torch.equal(g, g2)


@pytest.mark.parametrize("name", losses.LOSSES)
def test_closed_form_logit_hessian_against_dense_autograd(name):
    """∂²F/∂f² Rf against the dense per-replica Hessian of F in f (float64), also for a
    block of vectors (leading dimension) as hvp_block passes it."""
    f, head = _head_case(name, torch.float64, R=2, P=5, C=3)
    R, P, C = f.shape
    Rf = torch.randn(4, R, P, C, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    got = head.hessian(f)(Rf)
    for r in range(R):
        F_r = lambda x, r=r: head(x.view(1, P, C).expand(R, P, C))[r]
        H = torch.autograd.functional.hessian(F_r, f[r].reshape(-1))
        want = Rf[:, r].reshape(4, -1) @ H.T
        torch.testing.assert_close(got[:, r].reshape(4, -1), want, rtol=1e-12, atol=1e-14)
