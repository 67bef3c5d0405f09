"""The Hessian's eigenvalue density at recorded steps (stochastic Lanczos quadrature) and its
bottom eigenvalues: ρ(λ, t) through training, beside the recorded λ1, λ2 and 2/η.

A run recorded with `--density-steps M` holds the SLQ nodes and weights (and with `--bottom-k`
the bottom eigenpairs) at every spectrum step: they are read from the store. Any other step,
Lanczos length or vector count is computed from θ_t by exact replay with the run's own operator
(`hvp_block`), so the density is of the Hessian of the dynamical loss F_t at that step. The
vectors are drawn as the recorder draws them: a recomputed recorded step gives the recorded
nodes to round-off. For small networks (or `method="dense"`) the density is the exact spectral
measure instead, from the whole Hessian (`landscape.curvature.dense`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.curvature import quantities
from landscape.curvature.dense import MAX_DENSE
from landscape.curvature.density import Quadrature
from landscape.runs.opened import Run


def density(
    run,
    steps=None,
    replica: int = 0,
    lanczos_steps: int | None = None,
    vectors: int | None = None,
    bottom_k: int | None = None,
    grid: int = 500,
    sigma: float | None = None,
    seed: int = 0,
    recompute: bool = False,
    method: str = "auto",
) -> xr.Dataset:
    """SLQ nodes and weights (step, vec, node), the smoothed density ρ (step, lam) on a common
    grid, and the bottom `bottom_k` eigenvalues with their residuals, at each of `steps`.

    Defaults: the recorded steps, M, V and bottom-k where the run recorded a density, else the
    saved-parameter steps, M = 80, V = 8 and one bottom eigenvalue. `method`: "dense" (the whole
    spectrum: every eigenvalue a node of weight 1/n, exact bottom pairs), "slq", or "auto" (the
    recorded method; else SLQ where M or V is given, dense for small networks otherwise, as
    `record --density-method`). attrs['source'] says whether the nodes were
    read ("recorded") or computed ("replayed"), attrs['method'] how."""
    run = Run.open(run)
    idx = run.check_replicas([replica])[0]
    cfg, ds = run.config, run.ds
    rec = cfg.density_steps > 0 and "slq_nodes" in ds
    if steps is None:
        steps = ds.hstep.values if rec else ds.pstep.values
    steps = sorted({int(s) for s in np.atleast_1d(steps)})
    M = lanczos_steps if lanczos_steps is not None else (cfg.density_steps if rec else 80)
    V = vectors if vectors is not None else (cfg.density_vectors if rec else 8)
    kb = bottom_k if bottom_k is not None else (cfg.bottom_k if rec and cfg.bottom_k else 1)
    n = int(run.store.attrs["num_params"])
    if method not in ("auto", "dense", "slq"):
        raise LandscapeError(f"density method must be auto, dense or slq, got {method!r}")
    if method == "auto" and rec:  # what the run recorded
        dense = cfg.dense_spectrum(n)
    elif method == "auto" and (lanczos_steps is not None or vectors is not None):  # SLQ's settings asked for
        dense = False
    else:
        dense = replace(cfg, density_method=method).dense_spectrum(n)
    if dense and n > MAX_DENSE:
        raise LandscapeError(f"the dense spectrum is for networks of at most {MAX_DENSE} parameters, not {n}")
    if dense:
        M, V = n, 1
    if not 2 <= M <= n or V < 1 or not 1 <= kb <= n:
        raise LandscapeError(
            f"density needs --lanczos-steps from 2 to the network's {n} parameters (got {M}), --vectors >= 1 "
            f"(got {V}) and --bottom-k from 1 to {n} (got {kb})"
        )
    if grid < 10 or seed < 0:
        raise LandscapeError(f"density needs a grid of at least 10 points (got {grid}) and a seed >= 0 (got {seed})")
    stored = set(ds.hstep.values.tolist()) if rec else set()
    same = dense if cfg.dense_spectrum(n) else (not dense and seed == 0 and M == cfg.density_steps
                                                 and V == cfg.density_vectors)  # fmt: skip
    read = rec and not recompute and same and set(steps) <= stored
    read_low = read and cfg.bottom_k >= kb
    if read:
        at = ds.isel(replica=idx).sel(hstep=steps)
        N, W = at.slq_nodes.values, at.slq_weights.values
    if read_low:
        low, low_res = at.lambda_min.values[:, :kb], at.lambda_min_res.values[:, :kb]
    if not read_low:
        eng = run.engine([idx])
        thetas = torch.as_tensor(run.params_at(steps, [idx])[0]).to(eng.dtype)
        seeds = [cfg.replicas()[idx].seed]
        nodes, weights, lows, ress = [], [], [], []
        for theta, t in zip(thetas, steps):
            th = theta[None]
            if not read:
                q = quantities.dense_density(eng, th, t) if dense else quantities.density(eng, th, t, M, V, seeds, seed)
                nodes.append(q.nodes[0].double().cpu().numpy())
                weights.append(q.weights[0].double().cpu().numpy())
            b = quantities.dense_bottom(eng, th, t, kb) if dense else quantities.bottom(eng, th, t, kb, seeds)
            lows.append(b.eigvals[0].double().cpu().numpy())
            ress.append(b.residuals[0].double().cpu().numpy())
        if not read:
            N, W = np.stack(nodes), np.stack(weights)
        low, low_res = np.stack(lows), np.stack(ress)
    ok = np.isfinite(N)
    if not ok.any():
        raise LandscapeError(f"replica {idx} has no finite Hessian at steps {steps} (it diverged before them)")
    lo, hi = float(N[ok].min()), float(N[ok].max())
    pad = 0.05 * max(hi - lo, 1e-12)
    lam = np.linspace(lo - pad, hi + pad, grid)
    s = sigma if sigma is not None else (hi - lo + 2 * pad) / 200
    rho = Quadrature(torch.as_tensor(N), torch.as_tensor(W)).smoothed(torch.as_tensor(lam), s).numpy()  # steps as rows
    return xr.Dataset(
        {
            "nodes": (("step", "vec", "node"), N),
            "weights": (("step", "vec", "node"), W),
            "density": (("step", "lam"), rho),
            "lambda_min": (("step", "bottom"), low),
            "lambda_min_residual": (("step", "bottom"), low_res),
        },
        coords={"step": steps, "lam": lam, "bottom": np.arange(kb)},
        attrs={
            "replica": idx, "eta": float(ds.eta.values[idx]), "sigma": float(s), "lanczos_steps": M,
            "vectors": V, "seed": seed, "loss_name": cfg.loss, "source": str(run.path),
            "method": "dense" if dense else "slq",
            "nodes_from": "recorded" if read else "replayed", "lambda_min_from": "recorded" if read_low else "replayed",
        },
    )  # fmt: skip
