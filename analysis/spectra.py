"""The Hessian's eigenvalue density at recorded steps (stochastic Lanczos quadrature) and its
bottom eigenvalues: ρ(λ, t) through training, beside the recorded λ1, λ2 and 2/η.

θ at each step comes from exact replay; the operator is the run's own (`hvp_block`), so the
density is of the Hessian of the dynamical loss F_t at that step.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.curvature.density import Quadrature, bottomk_eigs, slq
from landscape.runs.opened import Run


def density(
    run,
    steps,
    replica: int = 0,
    lanczos_steps: int = 80,
    vectors: int = 8,
    bottom_k: int = 1,
    grid: int = 500,
    sigma: float | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """SLQ nodes and weights (step, vec, node), the smoothed density ρ (step, lam) on a common
    grid, and the bottom `bottom_k` eigenvalues with their residuals, at each of `steps`."""
    run = Run.of(run)
    idx = run.check_replicas([replica])[0]
    steps = sorted({int(s) for s in np.atleast_1d(steps)})
    if lanczos_steps < 2 or vectors < 1 or bottom_k < 1 or grid < 10:
        raise LandscapeError("density needs --lanczos-steps >= 2, --vectors >= 1, --bottom-k >= 1 and --grid >= 10")
    eng = run.engine([idx])
    thetas = torch.as_tensor(run.params_at(steps, [idx])[0]).to(eng.dtype)
    n, seeds = thetas.shape[1], [run.config.replicas()[idx].seed]
    nodes, weights, low, low_res = [], [], [], []
    for theta, t in zip(thetas, steps):
        op = eng.hvp_block(theta[None], t)
        q = slq(op, seeds, n, lanczos_steps, vectors, salt=seed + t, dtype=eng.dtype, device=eng.device)
        b = bottomk_eigs(op, bottom_k, seeds=seeds, n=n, tol=1e-6, max_iter=min(n, 400), salt=t,
                         dtype=eng.dtype, device=eng.device)  # fmt: skip
        nodes.append(q.nodes[0].double().numpy())
        weights.append(q.weights[0].double().numpy())
        low.append(b.eigvals[0].double().numpy())
        low_res.append(b.residuals[0].double().numpy())
    N, W = np.stack(nodes), np.stack(weights)
    lo, hi = float(N.min()), float(N.max())
    pad = 0.05 * max(hi - lo, 1e-12)
    lam = np.linspace(lo - pad, hi + pad, grid)
    s = sigma if sigma is not None else (hi - lo + 2 * pad) / 200
    rho = Quadrature(torch.as_tensor(N), torch.as_tensor(W)).smoothed(torch.as_tensor(lam), s).numpy()  # steps as rows
    return xr.Dataset(
        {
            "nodes": (("step", "vec", "node"), N),
            "weights": (("step", "vec", "node"), W),
            "density": (("step", "lam"), rho),
            "lambda_min": (("step", "bottom"), np.stack(low)),
            "lambda_min_residual": (("step", "bottom"), np.stack(low_res)),
        },
        coords={"step": steps, "lam": lam, "bottom": np.arange(bottom_k)},
        attrs={
            "replica": idx, "eta": float(run.ds.eta.values[idx]), "sigma": float(s), "lanczos_steps": lanczos_steps,
            "vectors": vectors, "seed": seed, "loss_name": run.config.loss, "source": str(run.path),
        },
    )  # fmt: skip
