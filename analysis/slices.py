"""The loss in the plane of the top-2 Hessian eigenvectors, with the iterates on it (Fig. 2, right).

At step t of one replica: F_t on the grid x_t + a·v1 + b·v2 (a, b ∈ [−span, span]),
v1, v2 the top-2 eigenvectors at x_t (the stored ones where θ_t was saved, else
recomputed at tight tolerance from the replayed θ_t), and the iterates
x_t … x_{t+follow} (deterministic replay) projected on the plane, with their
distance off it.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.curvature.spectrum import top_k
from landscape.machine import memory
from landscape.runs.opened import Run


def loss_slice(
    path, step: int, replica: int = 0, grid: int = 41, span: float = 1.0, follow: int = 20, batch: int = 256
) -> xr.Dataset:
    """One slice as a Dataset with dims (a, b) and (follow,)."""
    run = Run.open(path)
    ds, cfg = run.ds, run.config
    run.check_replicas([replica])
    done = ds.sizes["step"]
    if grid < 3 or not (np.isfinite(span) and span > 0) or follow < 0:
        raise LandscapeError("slices need --grid >= 3, a finite --span > 0 and --follow >= 0")
    n = int(ds.sizes["param"])
    memory.require(grid * grid * (n + 4) * 8, f"a {grid} × {grid} slice of {n} parameters")
    if not 0 <= step or step + follow >= done:
        raise LandscapeError(
            f"step {step} out of range: with --follow {follow} the store allows steps 0..{done - 1 - follow}"
        )
    engine = run.engine([replica])
    thetas = torch.as_tensor(run.params_at(list(range(step, step + follow + 1)), [replica])[0]).to(engine.dtype)
    x_t = thetas[0]
    if step % cfg.save_params_every == 0 and step in ds.pstep.values:
        V = torch.as_tensor(run.saved("eigvec", replica)[step // cfg.save_params_every, :2]).to(engine.dtype)
        lam = ds.eigval.isel(replica=replica).sel(hstep=step).values[:2]
        source = "stored"
    else:
        gen = torch.Generator().manual_seed(step)
        v0 = torch.randn(1, x_t.numel(), generator=gen, dtype=torch.float64).to(engine.dtype)
        res = top_k(engine, x_t[None], step, k=2, v0=v0, tol=1e-8, max_iter=300)
        V, lam, source = res.eigvecs[0], res.eigvals[0].numpy(), "recomputed"
    V = V / V.norm(dim=1, keepdim=True)
    a = np.linspace(-span, span, grid)
    A, B = np.meshgrid(a, a, indexing="ij")
    coef = torch.as_tensor(np.stack([A.ravel(), B.ravel()], 1)).to(engine.dtype)
    points = x_t[None] + coef @ V
    F = engine.loss_at(points, step, 0, batch).reshape(grid, grid).double().numpy()
    d = (thetas - x_t[None]).double()
    proj = d @ V.double().T
    off = (d - proj @ V.double()).norm(dim=1)
    return xr.Dataset(
        {
            "loss": (("a", "b"), F),
            "iter_a": (("follow",), proj[:, 0].numpy()),
            "iter_b": (("follow",), proj[:, 1].numpy()),
            "iter_offplane": (("follow",), off.numpy()),
            "iter_loss": (("follow",), ds.loss.isel(replica=replica).values[step : step + follow + 1]),
            "eigval": (("eig",), np.asarray(lam, dtype=np.float64)),
        },
        coords={"a": a, "b": a, "follow": np.arange(follow + 1), "eig": [0, 1]},
        attrs={
            "step": int(step),
            "replica": int(replica),
            "span": float(span),
            "eigvec_source": source,
            "eta": float(ds.eta.values[replica]),
            "loss_name": cfg.loss,
            "source": str(run.path),
        },
    )


def loss_slices(path, steps, replica: int = 0, **kw) -> xr.Dataset:
    """Several slices stacked along `slice_step`."""
    run = Run.open(path)  # opened once for all the slices
    parts = [loss_slice(run, int(s), replica, **kw) for s in steps]
    out = xr.concat(parts, dim="slice_step", combine_attrs="drop_conflicts")
    out = out.assign_coords(slice_step=[p.attrs["step"] for p in parts])
    out.attrs["eigvec_source"] = ",".join(p.attrs["eigvec_source"] for p in parts)
    return out
