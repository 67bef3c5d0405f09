"""The five losses of the spec, batched over replicas.

All take logits f (R, P, C), integer labels y (P,), one-hot targets Y (P, C) and
class weights Γ (R, C) and return F (R,): the mean over samples, as the reference
code does.
"""

from __future__ import annotations

import torch

LOSSES = ("ce", "dce", "mse", "dmse1", "dmse2")
STATIC = {"ce": "ce", "dce": "ce", "mse": "mse", "dmse1": "mse", "dmse2": "mse"}


def _nll(f, y):
    logp = torch.log_softmax(f, dim=-1)
    return -logp.gather(-1, y.expand(f.shape[0], -1).unsqueeze(-1)).squeeze(-1)  # (R, P)


def ce(f, y, Y, G):
    return _nll(f, y).mean(dim=1)


def dce(f, y, Y, G):
    return (G[:, y] * _nll(f, y)).mean(dim=1)  # eq. 2: weight of the sample's class


def mse(f, y, Y, G):
    return ((f - Y) ** 2).sum(dim=-1).mean(dim=1)


def dmse1(f, y, Y, G):
    return (G[:, y] * ((f - Y) ** 2).sum(dim=-1)).mean(dim=1)  # eq. 3 (spec's choice)


def dmse2(f, y, Y, G):
    return ((f - G.unsqueeze(1) * Y) ** 2).sum(dim=-1).mean(dim=1)  # eq. 4


FUNCTIONS = {"ce": ce, "dce": dce, "mse": mse, "dmse1": dmse1, "dmse2": dmse2}


def loss(name: str, f, y, Y, G) -> torch.Tensor:
    """F (R,) of loss `name`; unknown names raise KeyError listing the five."""
    try:
        fn = FUNCTIONS[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}") from None
    return fn(f, y, Y, G)
