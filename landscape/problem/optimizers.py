"""The update rules of the optimizers, batched over replicas, and their stability thresholds.

Each rule follows `torch.optim`'s conventions (float for float, in the order torch computes),
with every hyper-parameter a per-replica tensor (R,) like η, so one batch sweeps them:

- ``gd``: θ ← θ − η g.
- ``momentum`` (torch `SGD(momentum=β)`, dampening 0): v ← βv + g; θ ← θ − η v.
- ``nesterov`` (torch `SGD(momentum=β, nesterov=True)`): v ← βv + g; θ ← θ − η (g + βv).
- ``rmsprop`` (torch `RMSprop(alpha=α, eps=ε)`): s ← αs + (1 − α) g²; θ ← θ − η g / (√s + ε).
- ``adam`` (torch `Adam(betas=(β1, β2), eps=ε)`): m ← β1 m + (1 − β1) g; s ← β2 s + (1 − β2) g²;
  with bias correction (c1 = 1 − β1^k, c2 = 1 − β2^k at the k-th update)
  θ ← θ − (η / c1) m / (√s / √c2 + ε); without, θ ← θ − η m / (√s + ε).

The state starts at zero (torch's first momentum step, v = g, is the same thing).

Stability (`edge`): on a quadratic of curvature a, the linearised iteration loses stability
through an eigenvalue −1 (period 2) at a = edge. For the adaptive rules the curvature is
that of the preconditioned Hessian P⁻¹H with P = diag(√ŝ + ε) held fixed (Cohen et al. 2022):

    gd 2/η · momentum (2 + 2β)/η · nesterov (2 + 2β)/((1 + 2β)η)
    rmsprop 2/η · adam (2 + 2β1)/((1 − β1)η)   (38/η at β1 = 0.9)

>>> x = lambda v: torch.tensor([v], dtype=torch.float64)
>>> round(float(edge("adam", x(0.01), beta1=x(0.9))[0]), 9), round(float(edge("nesterov", x(0.1), beta=x(0.9))[0]), 9)
(3800.0, 13.571428571)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from landscape import LandscapeError

OPTIMIZERS = ("gd", "momentum", "nesterov", "rmsprop", "adam")
STATE = {"gd": (), "momentum": ("v",), "nesterov": ("v",), "rmsprop": ("s",), "adam": ("m", "s")}
ADAPTIVE = ("rmsprop", "adam")


def check(name: str) -> None:
    if name not in OPTIMIZERS:
        raise LandscapeError(f"unknown optimizer '{name}'; choose one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class Hyper:
    """Per-replica hyper-parameters (R,) of an optimizer; those it does not use are ignored.
    torch's defaults: momentum β 0.9 (no default in torch), RMSprop α 0.99, ε 1e-8;
    Adam β1 0.9, β2 0.999, ε 1e-8, bias correction on."""

    eta: torch.Tensor
    beta: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    beta1: torch.Tensor | None = None
    beta2: torch.Tensor | None = None
    eps: torch.Tensor | None = None
    bias_correction: bool = True

    def to(self, dtype, device) -> Hyper:
        """The same hyper-parameters as tensors of this dtype on this device."""
        cast = lambda v: None if v is None else torch.as_tensor(v).to(dtype=dtype, device=device)  # noqa: E731
        return replace(
            self,
            eta=torch.as_tensor(self.eta).to(dtype=dtype, device=device),
            beta=cast(self.beta),
            alpha=cast(self.alpha),
            beta1=cast(self.beta1),
            beta2=cast(self.beta2),
            eps=cast(self.eps),
        )

    def col(self, name: str) -> torch.Tensor:
        """The hyper-parameter as a column (R, 1), for broadcasting over θ's entries (a view,
        made on each call: no cache to mutate inside a compiled step)."""
        v = getattr(self, name)
        if v is None:
            raise LandscapeError(f"the optimizer needs its hyper-parameter {name}")
        return v.reshape(-1, 1)


def init_state(name: str, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    """Zero state (R, n) per buffer of the optimizer `name`."""
    check(name)
    return {k: torch.zeros_like(theta) for k in STATE[name]}


@torch.no_grad()
def update(
    name: str, theta: torch.Tensor, g: torch.Tensor, state: dict[str, torch.Tensor], h: Hyper, k: int | torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """θ and the state after the k-th update (k = 1, 2, …: Adam's bias correction) from the
    gradient g (R, n). New tensors; the inputs are left as they were."""
    eta = h.col("eta")
    if name == "gd":
        return torch.addcmul(theta, eta, g, value=-1.0), state
    if name in ("momentum", "nesterov"):
        beta = h.col("beta")
        v = torch.addcmul(g, beta, state["v"])  # βv + g
        step = torch.addcmul(g, beta, v) if name == "nesterov" else v
        return torch.addcmul(theta, eta, step, value=-1.0), {"v": v}
    if name == "rmsprop":
        alpha = h.col("alpha")
        s = torch.addcmul(alpha * state["s"], (1 - alpha) * g, g)  # torch's order: ((1 − α) g) g
        return torch.addcdiv(theta, eta * g, s.sqrt() + h.col("eps"), value=-1.0), {"s": s}
    if name == "adam":
        b1, b2 = h.col("beta1"), h.col("beta2")
        m = torch.lerp(state["m"], g, 1 - b1)  # torch's: exp_avg.lerp_(grad, 1 - beta1)
        s = torch.addcmul(b2 * state["s"], (1 - b2) * g, g)
        if h.bias_correction:
            c1, c2 = 1 - b1**k, 1 - b2**k
            denom = s.sqrt() / c2.sqrt() + h.col("eps")
            return torch.addcdiv(theta, (eta / c1) * m, denom, value=-1.0), {"m": m, "s": s}
        return torch.addcdiv(theta, eta * m, s.sqrt() + h.col("eps"), value=-1.0), {"m": m, "s": s}
    check(name)
    raise AssertionError(name)  # every name is handled above


def preconditioner(name: str, state: dict[str, torch.Tensor], h: Hyper, k: int) -> torch.Tensor | None:
    """P = diag(√ŝ + ε) (R, n) of an adaptive optimizer after k updates (ŝ = s / (1 − β2^k)
    with Adam's bias correction, and Adam's 1/(1 − β1^k) on the step folded in, as Cohen et al.
    2022); None for the others (P = I)."""
    if name == "rmsprop":
        return state["s"].sqrt() + h.col("eps")
    if name == "adam":
        if not h.bias_correction:
            return state["s"].sqrt() + h.col("eps")
        b1, b2 = h.col("beta1"), h.col("beta2")
        return (state["s"].sqrt() / (1 - b2**k).sqrt() + h.col("eps")) * (1 - b1**k)
    return None


def label(name: str, beta: float, beta1: float) -> str:
    """A short name that tells apart the runs a threshold depends on: the rule and its β.

    >>> label("momentum", 0.5, 0.9), label("adam", 0.9, 0.8), label("gd", 0.9, 0.9)
    ('momentum β0.5', 'adam β1 0.8', 'gd')
    """
    check(name)
    if name in ("momentum", "nesterov"):
        return f"{name} β{beta:g}"
    return f"adam β1 {beta1:g}" if name == "adam" else name


def describe(name: str, beta, alpha, beta1, beta2, eps, bias_correction: bool) -> str:
    """One line naming the rule, its hyper-parameters (a value or a list of the replicas') and
    its threshold (what `landscape info` says).

    >>> describe("momentum", (0.5, 0.9), 0.99, 0.9, 0.999, 1e-8, True)
    'momentum (heavy ball) β 0.5,0.9; threshold (2 + 2β)/η on λ(H)'
    """
    check(name)
    v = lambda x: ",".join(f"{float(y):g}" for y in (x if isinstance(x, list | tuple) else [x]))  # noqa: E731
    return {
        "gd": "gd; threshold 2/η on λ(H)",
        "momentum": f"momentum (heavy ball) β {v(beta)}; threshold (2 + 2β)/η on λ(H)",
        "nesterov": f"nesterov β {v(beta)}; threshold (2 + 2β)/((1 + 2β)η) on λ(H)",
        "rmsprop": f"rmsprop α {v(alpha)} ε {v(eps)}; threshold 2/η on λ(P⁻¹H)",
        "adam": f"adam β1 {v(beta1)} β2 {v(beta2)} ε {v(eps)}{'' if bias_correction else ' (no bias correction)'}; "
        "threshold (2 + 2β1)/((1 − β1)η) on λ(P⁻¹H)",
    }[name]


def edge(name: str, eta: torch.Tensor, beta=None, beta1=None) -> torch.Tensor:
    """The stability threshold (R,) on the sharpness (of P⁻¹H for the adaptive rules)."""
    check(name)
    if name in ("gd", "rmsprop"):
        return 2 / eta
    if name == "momentum":
        return (2 + 2 * beta) / eta
    if name == "nesterov":
        return (2 + 2 * beta) / ((1 + 2 * beta) * eta)
    return (2 + 2 * beta1) / ((1 - beta1) * eta)
