"""The tangent map of one training step, for every optimizer: what the Lyapunov exponents push
their vectors through.

Training is a map of the whole state z_t = (θ_t, b_t) — the parameters and the optimizer's
buffers b (none for gradient descent, v for momentum, m and s for Adam, …) — to z_{t+1}. Its
Jacobian applied to a tangent vector δz = (δθ, δb) is

    δg = H_t(θ_t) δθ                      (the batched Hessian-vector product)
    (δθ', δb') = ∂update/∂(θ, g, b) · (δθ, δg, δb)

with `update` the optimizer's own rule (`landscape.problem.optimizers.update`), differentiated
in forward mode (`torch.func.jvp`): exact, and the same arithmetic whichever rule runs. For
gradient descent this is δθ − η H δθ. Tangent vectors live in R^{n (1 + m)}: θ's n entries,
then each buffer's, in `optimizers.STATE` order.

A replica whose θ is not finite (diverged, or stopped on purpose) gets NaN vectors and costs
no Hessian-vector product.
"""

from __future__ import annotations

import torch
from torch.func import jvp

from landscape.curvature.eigen import random_block
from landscape.curvature.healthy import healthy
from landscape.dynamics.lyapunov import orthonormal
from landscape.problem import optimizers

TANGENT_SALT = 104729  # the start directions' salt beside the step: not the eigensolver's block


def state_size(engine) -> int:
    """The length of a tangent vector: n (1 + number of the optimizer's buffers)."""
    return engine.num_params * (1 + len(optimizers.STATE[engine.optimizer]))


@torch.no_grad()
def apply(engine, theta: torch.Tensor, t: int, G: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """J_t V (R, K, N) for tangent vectors V (R, K, N) at θ_t (R, n) with Γ G (R, C); the
    engine's optimizer state must be at step t (as it is before the step that leaves t)."""
    out = torch.full_like(V, float("nan"))
    ok = healthy(theta)
    if not ok.any():
        return out
    rows = torch.nonzero(ok).flatten()
    n, name = engine.num_params, engine.optimizer
    th, Vr = theta[rows], V[rows]
    HV = engine.hvp_block(theta, t, G)(Vr[..., :n].contiguous(), rows)
    if name == "gd":
        out[rows] = Vr - engine.eta[rows].reshape(-1, 1, 1) * HV
        return out
    state, _ = engine.optimizer_state()
    names = optimizers.STATE[name]
    st = [state[b][rows] for b in names]
    h = _rows(engine.hyper, rows)
    # the gradient enters the adaptive rules through g²; the linear ones do not need its value
    g = engine._gradient(th, G[rows]) if name in optimizers.ADAPTIVE else torch.zeros_like(th)

    def step(th_, g_, *buf):
        new, s = optimizers.update(name, th_, g_, dict(zip(names, buf)), h, t + 1)
        return (new, *(s[b] for b in names))

    for j in range(V.shape[1]):
        d = Vr[:, j]
        pieces = [d[:, i * n : (i + 1) * n] for i in range(1 + len(names))]
        tan = jvp(step, (th, g, *st), (pieces[0], HV[:, j], *pieces[1:]))[1]
        out[rows, j] = torch.cat(tan, dim=1)
    return out


def start(engine, seeds, K: int, t: int) -> torch.Tensor:
    """K orthonormal tangent vectors (R, K, N) per replica at step t: random directions drawn
    from each replica's seed and t, so a replica starts the same alone or in any batch (the
    recorder at step 0 and a replay from step t agree)."""
    V0 = random_block(seeds, K, state_size(engine), t + TANGENT_SALT, engine.dtype, engine.device)
    return orthonormal(V0)[0]


def push(engine, theta: torch.Tensor, t: int, G: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Benettin's step: the tangent vectors after the step from θ_t, re-orthonormalised (R, K, N),
    and their log stretch (R, K) (log |R_kk| of the QR factorisation); NaN for a replica
    that is not healthy."""
    W = apply(engine, theta, t, G, V)
    ok = torch.isfinite(W).all(dim=2).all(dim=1)
    logs = torch.full(V.shape[:2], float("nan"), dtype=V.dtype, device=V.device)
    out = torch.full_like(V, float("nan"))
    if ok.all():
        out, r = orthonormal(W)
        return out, torch.log(r)
    if ok.any():
        q, r = orthonormal(W[ok])
        out[ok], logs[ok] = q, torch.log(r)
    return out, logs


def _rows(h: optimizers.Hyper, rows: torch.Tensor) -> optimizers.Hyper:
    """The hyper-parameters of some replicas."""
    pick = lambda v: None if v is None else v[rows]  # noqa: E731
    return optimizers.Hyper(eta=h.eta[rows], beta=pick(h.beta), alpha=pick(h.alpha), beta1=pick(h.beta1),
                            beta2=pick(h.beta2), eps=pick(h.eps), bias_correction=h.bias_correction)  # fmt: skip
