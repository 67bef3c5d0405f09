"""The iterates' period-2 signal: what shows a bounce across a valley when the loss cannot.

A bounce across a symmetric valley, θ_t = θ̄ + (−1)^t a v, changes θ with period 2 but the
loss with period 1 (F(θ̄ + a v) = F(θ̄ − a v)), so the loss series cannot show it. The
iterates do. Per step t and replica the recorder keeps, from θ_{t−2} … θ_{t+1}:

- ``iter_p``   ‖p_t‖, p_t = θ_{t+1} − 2θ_t + θ_{t−1} (the second difference: a drift at constant
  velocity has none, a bounce of amplitude a gives 4a‖v‖, alternating in direction);
- ``iter_q``   ‖p_t − p_{t−1}‖ (the third difference: 8a‖v‖ for a bounce, only the third
  derivative of a smooth drift; the alternating part's amplitude, decaying or growing);
- ``iter_cos`` cos(p_t, p_{t−1}) (−1 for a bounce, +1 for a smooth curve);
- ``iter_proj`` [.., proj] u_k · θ_t on K fixed random unit directions u_k (stored as
  ``iter_dirs``): 1-D series of the iterates for the period-4, 8, 16 and chaos levels, which
  need strides longer than one step.

Steps whose differences reach before step 0 are NaN (p_0, q_0, q_1, cos_0, cos_1). The
state carried from step to step is (d_{t−1}, p_{t−1}) with d_t = θ_{t+1} − θ_t; every engine
computes d, p and q by the same IEEE subtractions of the same θ, so their signals agree
to the rounding of the sums.
"""

from __future__ import annotations

import numpy as np
import torch

NUM_DIRS = 4
DIRS_SEED = 20240917
RING_BYTES = 4 << 20  # the θ references an eager engine keeps before computing their signals


def directions(n: int, k: int = NUM_DIRS, seed: int = DIRS_SEED) -> np.ndarray:
    """(k, n) fixed random unit directions (float64; the same for every run of n parameters)."""
    u = np.random.default_rng(seed).standard_normal((k, n))
    return u / np.linalg.norm(u, axis=1, keepdims=True)


def _finish(pn2: torch.Tensor, qn2: torch.Tensor, dot: torch.Tensor, pp2: torch.Tensor) -> torch.Tensor:
    """(…, 3) of ‖p‖, ‖q‖ and cos(p, p_prev) from the squared norms and the dot product."""
    cos = dot / torch.sqrt(pn2 * pp2)
    return torch.stack([pn2.sqrt(), qn2.sqrt(), cos.clamp(-1.0, 1.0)], dim=-1)


def project(theta: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """(…, K) projections u_k · θ, one dot product per row and direction: a matrix product
    would round each row differently with the number of rows (BLAS blocks by the batch), so a
    replica's series would depend on the batch it was recorded in (by an ulp); a row's dot
    product depends on that row alone."""
    return (theta.unsqueeze(-2) * U).sum(-1)


def step_signals(theta: torch.Tensor, new: torch.Tensor, d_prev: torch.Tensor, p_prev: torch.Tensor, U: torch.Tensor):
    """One step's signals (3 + K, R) from θ_t, θ_{t+1} and the state, and the new state (d, p):
    what a compiled scan computes inside its loop."""
    d = new - theta
    p = d - d_prev
    q = p - p_prev
    sc = _finish((p * p).sum(-1), (q * q).sum(-1), (p * p_prev).sum(-1), (p_prev * p_prev).sum(-1))
    return torch.cat([sc.t(), project(theta, U).t()]), d, p


def signals(thetas: torch.Tensor, d_prev: torch.Tensor, p_prev: torch.Tensor, U: torch.Tensor):
    """The signals of steps 0 … S−1 of θ (S+1, R, n) (θ_0 … θ_S), given d, p (R, n) of the step
    before θ_0 (NaN where there was none): (S, R, 3) scalars, (S, R, K) projections, and
    the state (d, p) after the last step. A few passes over the block, no concatenated copies."""
    D = thetas[1:] - thetas[:-1]
    P = torch.empty_like(D)
    torch.sub(D[0], d_prev, out=P[0])
    torch.sub(D[1:], D[:-1], out=P[1:])
    Q = torch.empty_like(D)
    torch.sub(P[0], p_prev, out=Q[0])
    torch.sub(P[1:], P[:-1], out=Q[1:])
    pn2 = torch.linalg.vecdot(P, P)
    pp2 = torch.cat([torch.linalg.vecdot(p_prev, p_prev)[None], pn2[:-1]])
    dot = torch.cat([torch.linalg.vecdot(P[0], p_prev)[None], torch.linalg.vecdot(P[1:], P[:-1])])
    sc = _finish(pn2, torch.linalg.vecdot(Q, Q), dot, pp2)
    return sc, project(thetas[:-1], U), D[-1], P[-1]


class Tracker:
    """The iterate signals of a recording, step by step, whichever engine ran the steps.

    An engine either hands every new θ to `push` (the Python engines: the tensors are kept by
    reference, no copy, and their signals computed a ring at a time, so the step pays for no
    extra kernel launches), or computes the signals itself from `d`, `p` and `U` and hands them
    to `extend` (the fused and scanned steps). `take(t, b)` returns those of steps t … b−1."""

    def __init__(self, theta: torch.Tensor, t: int, U: torch.Tensor | None = None, ring: int | None = None):
        R, n = theta.shape
        # (R, 2, n): d and p side by side, so a C++ loop updates both in place without a copy
        self.state = torch.full((R, 2, n), float("nan"), dtype=theta.dtype, device=theta.device)
        U = torch.as_tensor(directions(n)) if U is None else U
        self.U = U.to(dtype=theta.dtype, device=theta.device).contiguous()
        self.t = t  # the step of the last θ handed in
        self._ring = [theta]
        size = max(1, theta.numel() * theta.element_size())
        self.ring = ring if ring is not None else int(min(64, max(2, RING_BYTES // size)))
        self._out: list[tuple[int, torch.Tensor, torch.Tensor]] = []

    @property
    def d(self) -> torch.Tensor:
        return self.state[:, 0]

    @property
    def p(self) -> torch.Tensor:
        return self.state[:, 1]

    def _set(self, d: torch.Tensor, p: torch.Tensor) -> None:
        if d.data_ptr() != self.state[:, 0].data_ptr():
            self.state[:, 0] = d
        if p.data_ptr() != self.state[:, 1].data_ptr():
            self.state[:, 1] = p

    def warm(self, before: list[torch.Tensor]) -> None:
        """Set the state from θ_{t−2}, θ_{t−1} (oldest first; fewer at the start of a run): what a
        resumed recording replays to continue the signals bit for bit."""
        th = [*before, self._ring[0]]
        if len(th) >= 2:
            self.state[:, 0] = th[-1] - th[-2]
        if len(th) >= 3:
            self.state[:, 1] = self.state[:, 0] - (th[-2] - th[-3])

    def push(self, theta: torch.Tensor) -> None:
        """θ_{t+1} after a step of the engine."""
        self._ring.append(theta)
        self.t += 1
        if len(self._ring) > self.ring:
            self._drain()

    def extend(self, sc: torch.Tensor, proj: torch.Tensor, theta: torch.Tensor, d=None, p=None):
        """S steps' signals computed by the engine ((S, R, 3), (S, R, K)) ending at θ with state
        (d, p) (None: the engine updated `state` in place)."""
        self._drain()
        self._out.append((self.t, sc, proj))
        self.t += sc.shape[0]
        self._ring = [theta]
        if d is not None and p is not None:
            self._set(d, p)

    def _drain(self) -> None:
        if len(self._ring) < 2:
            return
        sc, proj, d, p = signals(torch.stack(self._ring), self.d, self.p, self.U)
        self._set(d, p)
        self._out.append((self.t - sc.shape[0], sc, proj))
        self._ring = self._ring[-1:]

    def take(self, t: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(R, b−t, 3) scalars and (R, b−t, K) projections of steps t … b−1 (all handed in), as NumPy."""
        self._drain()
        sc = torch.cat([s for _, s, _ in self._out]) if self._out else torch.empty(0)
        pj = torch.cat([p for _, _, p in self._out]) if self._out else torch.empty(0)
        t0 = self._out[0][0] if self._out else self.t
        if t0 != t or sc.shape[0] < b - t:
            raise RuntimeError(f"iterate signals of steps {t}…{b - 1} requested, {t0}…{t0 + sc.shape[0] - 1} held")
        keep = sc.shape[0] - (b - t)
        self._out = [(b, sc[b - t :], pj[b - t :])] if keep else []
        np_ = lambda x: x.transpose(0, 1).detach().cpu().numpy().astype(np.float64)
        return np_(sc[: b - t]), np_(pj[: b - t])


def from_trajectory(thetas: np.ndarray, U: np.ndarray | None = None):
    """Signals of a whole trajectory θ_0 … θ_N ((N+1, n) or (N+1, R, n)), in float64: the
    independent reference for the tests and what a replay of an older store computes."""
    th = torch.as_tensor(np.asarray(thetas, dtype=np.float64))
    squeeze = th.dim() == 2
    if squeeze:
        th = th[:, None]
    n = th.shape[-1]
    Ut = torch.as_tensor(directions(n) if U is None else U, dtype=torch.float64)
    nan = torch.full(th.shape[1:], float("nan"), dtype=torch.float64)
    sc, proj, _, _ = signals(th, nan, nan, Ut)
    sc, proj = sc.numpy(), proj.numpy()
    return (sc[:, 0], proj[:, 0]) if squeeze else (sc, proj)
