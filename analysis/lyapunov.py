"""Lyapunov exponents of a recorded run's training map, by exact replay.

Gradient descent's map θ_{t+1} = θ_t − η∇F_t(θ_t) has the tangent map J_t = I − η H_t(θ_t);
K tangent vectors per replica go through it by the engine's batched Hessian-vector products
while θ is replayed with the recording's own arithmetic (`landscape.dynamics.lyapunov`).
On a quadratic valley of curvature λ the exponent is ln|1 − ηλ|: negative below the edge,
zero at λ = 2/η, positive beyond; over a stretch of training the top exponent says whether
nearby trajectories converge (the bounce is stable) or separate.

The start directions are random (from each replica's seed and the start step), so the
answer is the same whichever replicas are asked for together.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.curvature.eigen import random_block
from landscape.dynamics.lyapunov import benettin
from landscape.runs.opened import Run

TANGENT_SALT = 104729  # the start directions' salt beside the step: not the eigensolver's block


def _window(source, start: int, steps: int | None) -> tuple[Run, int]:
    """The run and the length of the stretch from `start` (default: to the end of the
    recording), refused in one line where the stretch is not all recorded or the run is not
    gradient descent's (the tangent map here is I − ηH; an optimizer's state adds directions)."""
    run = Run.open(source)
    if run.config.optimizer != "gd":
        raise LandscapeError(
            f"{run.path}: a {run.config.optimizer} run; the Lyapunov exponents and twins here are of gradient "
            "descent's map θ ↦ θ − η∇F (tangent I − ηH), not of an optimizer with state"
        )
    done = run.steps_done
    steps = done - start if steps is None else int(steps)
    if not 0 <= start < done or steps < 1 or start + steps > done:
        raise LandscapeError(f"steps {start} … {start + steps - 1} are not all recorded (0 … {done - 1})")
    return run, steps


def lyapunov(source, k: int = 2, start: int = 0, steps: int | None = None, replicas=None,
             window: int | None = None, device: str = "cpu") -> xr.Dataset:  # fmt: skip
    """The top-k finite-time exponents of each replica from step `start` over `steps` steps
    (default: to the end of the recording): `exponent` (replica, k), `running` (replica, k,
    step) and, with `window`, `window_exponent` (replica, k, window)."""
    run, steps = _window(source, start, steps)
    idx = run.check_replicas(replicas)
    eng = run.engine(idx, device)
    n = eng.num_params
    if not 1 <= k <= n:
        raise LandscapeError(f"k must be from 1 to the network's {n} parameters, got {k}")
    theta = torch.as_tensor(run.params_at([start], idx, device)[:, 0]).to(eng.dtype).to(eng.device)
    seeds = [run.config.replicas()[i].seed for i in idx]
    V0 = random_block(seeds, k, n, start + TANGENT_SALT, eng.dtype, eng.device)
    eta = eng.eta.reshape(-1, 1, 1)
    rows = torch.arange(len(idx), device=eng.device)

    def tangent(x, t, V):
        return V - eta * eng.hvp_block(x, t)(V, rows)

    res = benettin(lambda x, t: eng.advance(x, t, t + 1), tangent, theta, V0, steps, t0=start)
    ds = run.ds.isel(replica=idx)
    coords = {name: ("replica", ds[name].values) for name in ("seed", "eta", "amplitude", "period") if name in ds}
    out = xr.Dataset(
        {
            "exponent": (("replica", "k"), res.exponents.cpu().numpy(),
                         {"long_name": "finite-time Lyapunov exponent of the training map (per step)"}),
            "running": (("replica", "k", "step"), res.running().cpu().numpy(),
                        {"long_name": "exponent from the start step to each step"}),
        },
        coords={"replica": np.asarray(idx), "k": np.arange(k), "step": np.arange(start, start + steps), **coords},
        attrs={"source": str(run.path), "start": start, "steps": steps},
    )  # fmt: skip
    if window:
        w = res.windows(int(window)).cpu().numpy()
        out["window_exponent"] = (("replica", "k", "window"), w, {"long_name": f"exponent over windows of {window}"})
        out = out.assign_coords(window=start + int(window) * np.arange(w.shape[-1]))
    return out


def twin_separation(source, start: int, steps: int, eps=(1e-9, 1e-6, 1e-4), direction: str = "v1",
                    replicas=None, device: str = "cpu") -> xr.Dataset:  # fmt: skip
    """Finite-amplitude growth: a twin of each replica started at θ_start + ε u (u the top Hessian
    eigenvector at `start`, "v1", or a random unit vector, "random") and trained on beside it
    in one batch with the recording's step; `separation` (replica, eps, step) is ‖θ'_t − θ_t‖ / ε, and
    `growth` (replica, eps) the mean log-growth per step. For ε → 0 it is the tangent map's
    stretching of u (what the Lyapunov exponents measure); at a finite ε it is what a bounce of
    that amplitude does, which a kink of the ReLUs inside it can change."""
    run, steps = _window(source, start, steps)
    if direction not in ("v1", "random"):
        raise LandscapeError(f"direction must be v1 or random, got {direction!r}")
    eps = [float(e) for e in eps]
    if not eps or any(not np.isfinite(e) or e <= 0 for e in eps):
        raise LandscapeError(f"the twins' distances ε must be > 0, got {eps}")
    idx = run.check_replicas(replicas)
    E = len(eps)
    rows = idx * (1 + E)  # the replicas, then a twin of each per ε, in one batch
    eng = run.engine(rows, device)
    theta = torch.as_tensor(run.params_at([start], idx, device)[:, 0]).to(eng.dtype).to(eng.device)
    seeds = [run.config.replicas()[i].seed for i in idx]
    if direction == "v1":
        from landscape.curvature.spectrum import top_k

        sub = run.engine(idx, device)
        u = top_k(sub, theta, start, 2, tol=1e-10, max_iter=400, salt=start, seeds=seeds).eigvecs[:, 0]
    else:
        u = random_block(seeds, 1, theta.shape[1], start + TANGENT_SALT, eng.dtype, eng.device)[:, 0]
    u = u / u.norm(dim=1, keepdim=True)
    scale = torch.tensor(eps, dtype=eng.dtype, device=eng.device).repeat_interleave(len(idx)).unsqueeze(1)
    x = torch.cat([theta, theta.repeat(E, 1) + scale * u.repeat(E, 1)])
    R = len(idx)
    sep = np.empty((R, E, steps))
    for j in range(steps):
        x = eng.advance(x, start + j, start + j + 1)
        d = (x[R:] - x[:R].repeat(E, 1)).norm(dim=1) / scale[:, 0]
        sep[:, :, j] = d.reshape(E, R).T.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        growth = np.log(sep[:, :, -1]) / steps
    ds = run.ds.isel(replica=idx)
    coords = {name: ("replica", ds[name].values) for name in ("seed", "eta", "amplitude", "period") if name in ds}
    return xr.Dataset(
        {
            "separation": (("replica", "eps", "step"), sep,
                           {"long_name": "‖θ'_t − θ_t‖ / ε of the twin started at distance ε"}),
            "growth": (("replica", "eps"), growth, {"long_name": "mean log-growth of the separation per step"}),
        },
        coords={"replica": np.asarray(idx), "eps": np.asarray(eps), "step": np.arange(start + 1, start + steps + 1),
                **coords},
        attrs={"source": str(run.path), "start": start, "steps": steps, "direction": direction},
    )  # fmt: skip
