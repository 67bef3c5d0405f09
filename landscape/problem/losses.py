"""The five losses of the spec, batched over replicas.

All take logits f (R, P, C), integer labels y (P,), one-hot targets Y (P, C) and
class weights Γ (R, C) and return F (R,): the mean over samples, as the reference
code does.

`Head` also gives ∂F/∂f and ∂²F/∂f² · Rf written out in closed form, so a training step
needs no autograd graph (one graph for `torch.compile`, no per-step graph overhead). The
gradient repeats autograd's arithmetic operation for operation, so trajectories are the
ones autograd gives; tests/landscape/problem/test_losses.py checks both against autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from landscape import LandscapeError

LOSSES = ("ce", "dce", "mse", "dmse1", "dmse2")
STATIC = {"ce": "ce", "dce": "ce", "mse": "mse", "dmse1": "mse", "dmse2": "mse"}


def check(name: str) -> str:
    """The loss name, or one line naming the losses there are (the one place this is checked)."""
    if name not in LOSSES:
        raise LandscapeError(f"unknown loss '{name}'; choose one of {', '.join(LOSSES)}")
    return name


def _nll_at(logp, y):
    return -logp.gather(-1, y.expand(logp.shape[0], -1).unsqueeze(-1)).squeeze(-1)  # (R, P)


def _nll(f, y):
    return _nll_at(torch.log_softmax(f, dim=-1), y)


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


_log_softmax_bwd = torch.ops.aten._log_softmax_backward_data
_CE_FAMILY = ("ce", "dce")
_WEIGHTED = ("dce", "dmse1")  # Γ weights the sample by its class


@dataclass(frozen=True)
class Head:
    """Loss `name` with its labels and Γ (R, C) bound: the logits → loss end of the network."""

    name: str
    y: torch.Tensor
    Y: torch.Tensor
    G: torch.Tensor

    def __call__(self, f: torch.Tensor) -> torch.Tensor:
        return loss(self.name, f, self.y, self.Y, self.G)

    def _mean(self, per_sample: torch.Tensor) -> torch.Tensor:
        """F from the per-sample losses (R, P): the mean, Γ-weighted for dce and dmse1 (eqs. 2, 3)."""
        if self.name in _WEIGHTED:
            per_sample = self.G[:, self.y] * per_sample
        return per_sample.mean(dim=1)

    def _scale(self, P: int) -> torch.Tensor | float:
        """∂F/∂(per-sample loss), broadcastable to (R, P, C): 1/P (times Γ of the sample's class),
        rounded as autograd rounds it."""
        inv = 1.0 / P
        return (self.G[:, self.y] * inv).unsqueeze(-1) if self.name in _WEIGHTED else inv

    def value_and_grad(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """F (R,) and ∂F/∂f (R, P, C) in closed form.

        ce, dce: a (softmax(f) − Y) with a = Γ_y/P;  mse, dmse1: a · 2(f − Y);
        dmse2: 2(f − Γ Y)/P."""
        a = self._scale(f.shape[1])
        if self.name in _CE_FAMILY:
            logp = torch.log_softmax(f, dim=-1)
            # −a at the label, then log-softmax's own backward kernel (autograd's rounding)
            return self._mean(_nll_at(logp, self.y)), _log_softmax_bwd(self.Y.expand_as(f) * (-a), logp, -1, f.dtype)
        d = f - (self.G.unsqueeze(1) * self.Y if self.name == "dmse2" else self.Y)
        return self._mean((d**2).sum(dim=-1)), a * (2 * d)

    def hessian(self, f: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """Rf (…, R, P, C) ↦ ∂²F/∂f² Rf, block-diagonal over samples.

        ce, dce: a (s ⊙ Rf − s (s · Rf));  mse, dmse1, dmse2: 2a Rf."""
        a = self._scale(f.shape[1])
        if self.name in _CE_FAMILY:
            s = torch.softmax(f, dim=-1)

            def ce_hvp(Rf):
                sR = s * Rf
                return a * (sR - s * sR.sum(dim=-1, keepdim=True))

            return ce_hvp
        return lambda Rf: (2 * a) * Rf
