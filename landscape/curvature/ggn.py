"""The generalised Gauss–Newton operator G = Jᵀ H_out J beside the Hessian.

J is the Jacobian of the logits f(θ) (R, P, C) and H_out the loss's Hessian with respect to
the logits (per sample, C × C; Γ-weighted for the dynamical losses). G drops from H the term
Σ (∂ℓ/∂f) ∇²f that the network's own curvature contributes; for the convex losses here (CE,
MSE and their Γ-weighted forms, Γ > 0) it is positive semi-definite. Lowell & Kastner 2024
find the top of the Hessian's spectrum mostly Gauss–Newton; with `ggn_block` the same batched
eigensolvers answer how much.

A product is one forward-mode pass through the network (J v), one through the loss's
gradient (H_out J v) and one reverse pass (Jᵀ u), by torch.func on any differentiable
logits function, replicas in one batch (they are independent, so the batch's Jacobian is
block diagonal).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import grad, jvp, vjp

from landscape.curvature.eigen import BlockOp


def ggn_block(logits: Callable[[torch.Tensor], torch.Tensor], head: Callable, theta: torch.Tensor) -> BlockOp:
    """The block map (V (Ra, b, n), rows) ↦ G V of the replicas `rows` at θ (R, n).

    logits: θ (r, n) ↦ f (r, P, C). head: (f (r, P, C), rows) ↦ the loss summed over those
    replicas (each replica's loss depends on its own logits only)."""
    theta = theta.detach()

    def op(V: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        x = theta[rows]
        found = vjp(logits, x)
        f, pull = found[0].detach(), found[1]
        d_out = grad(lambda z: head(z, rows))
        out = []
        for j in range(V.shape[1]):
            Jv = jvp(logits, (x,), (V[:, j],))[1]
            HJv = jvp(d_out, (f,), (Jv,))[1]
            out.append(pull(HJv)[0])
        return torch.stack(out, dim=1)

    return op
