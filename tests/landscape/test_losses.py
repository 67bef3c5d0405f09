import numpy as np
import pytest
import torch

from landscape import losses


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
