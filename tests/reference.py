"""Independent oracles for the tests: plain autograd forms of what the engine computes with
hand-written passes, and the one dense float64 Hessian every curvature test compares with.
They live here, not in the package, because only tests need them."""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, grad, hessian, jvp

from landscape.problem import losses
from landscape.problem.mlp import MLPSpec


def forward(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Logits (R, P, C) of every replica on the shared inputs X (P, d), in the plain
    sample-major form (the engine uses feature-major passes)."""
    act = {  # written here, not taken from the package: the oracle is independent
        "relu": torch.relu,
        "tanh": torch.tanh,
        "softplus": lambda z: torch.nn.functional.softplus(z, beta=spec.beta, threshold=1e6),
    }[spec.activation]
    layers = spec.unflatten(theta)
    h = X
    for li, (W, b) in enumerate(layers):
        h = torch.matmul(h, W) + b.unsqueeze(1)
        if li < len(layers) - 1:
            h = act(h)
    return h


def loss(engine, theta: torch.Tensor, t: int) -> torch.Tensor:
    """F_t(θ) per replica (R,), autograd-friendly."""
    return losses.loss(engine.loss_name, forward(engine.spec, theta, engine.X), engine.y, engine.Y, engine.gamma(t))


def hvp_autodiff(engine, theta: torch.Tensor, t: int):
    """V ↦ H V of every replica by torch.func forward-over-reverse (R, n) → (R, n)."""
    G = engine.gamma(t)
    theta = theta.detach()

    def total(th):
        return losses.loss(engine.loss_name, forward(engine.spec, th, engine.X), engine.y, engine.Y, G).sum()

    g = grad(total)
    return lambda V: jvp(g, (theta,), (V,))[1]


def dense_hessian(engine, theta: torch.Tensor, t: int, r: int) -> np.ndarray:
    """Replica r's Hessian of F_t at θ_r, dense float64 (n, n): torch.func.hessian of the plain
    forward (`forward` for the built-in MLP; an ordinary module's `functional_call` for a
    ModuleEngine), independent of the engines' hand-written and vmapped passes."""
    G = engine.gamma(t)[r : r + 1]
    head = lambda f: losses.loss(engine.loss_name, f, engine.y, engine.Y, G)[0]  # noqa: E731
    if hasattr(engine, "spec"):  # the built-in MLP

        def F(x):
            return head(forward(engine.spec, x[None], engine.X))
    else:
        module = engine.make(0).to(dtype=engine.dtype, device=engine.device)
        offsets = np.cumsum([0, *engine.sizes])

        def F(x):
            p = {n: x[o : o + s].reshape(sh) for n, o, s, sh in zip(engine.names, offsets, engine.sizes, engine.shapes)}
            return head(functional_call(module, p, (engine.X,))[None])

    return hessian(F)(theta[r].detach().clone()).double().cpu().numpy()


def top_eigenvalues(engine, theta: torch.Tensor, t: int, r: int, k: int = 2) -> np.ndarray:
    """The k largest eigenvalues of replica r's dense Hessian at θ (`dense_hessian`), largest first."""
    return np.linalg.eigvalsh(dense_hessian(engine, theta, t, r))[::-1][:k]


def assert_top_eigenvalues(eigvals, engine, theta: torch.Tensor, t: int, *, rtol: float, atol: float = 0.0) -> None:
    """Every replica's eigenvalues (R, k), as a solver returned them, are the top k of its dense
    Hessian of F_t at θ (R, n), within rtol/atol: the comparison every spectrum test makes."""
    got = np.asarray(eigvals.detach().cpu() if isinstance(eigvals, torch.Tensor) else eigvals, dtype=np.float64)
    for r in range(got.shape[0]):
        want = top_eigenvalues(engine, theta, t, r, got.shape[1])
        np.testing.assert_allclose(got[r], want, rtol=rtol, atol=atol, err_msg=f"replica {r} at t = {t}")


def dense_ggn(engine, theta: torch.Tensor, t: int, r: int, logits=None) -> np.ndarray:
    """Replica r's generalised Gauss–Newton matrix Jᵀ H_out J of F_t at θ_r, dense float64
    (n, n): J the Jacobian of the logits (by torch.func.jacrev of `logits`, default the plain
    `forward` of the built-in MLP), H_out the loss's dense Hessian in the logits."""
    G = engine.gamma(t)[r : r + 1]
    net = logits or (lambda x: forward(engine.spec, x[None], engine.X)[0])
    x = theta[r].detach().clone()
    f = net(x)
    J = torch.func.jacrev(net)(x).reshape(f.numel(), -1)
    Hout = hessian(lambda z: losses.loss(engine.loss_name, z[None], engine.y, engine.Y, G)[0])(f)
    Hout = Hout.reshape(f.numel(), f.numel())
    return (J.T @ Hout @ J).double().cpu().numpy()
