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


def lyapunov(source, k: int = 2, start: int = 0, steps: int | None = None, replicas=None,
             window: int | None = None, device: str = "cpu") -> xr.Dataset:  # fmt: skip
    """The top-k finite-time exponents of each replica from step `start` over `steps` steps
    (default: to the end of the recording): `exponent` (replica, k), `running` (replica, k,
    step) and, with `window`, `window_exponent` (replica, k, window)."""
    run = Run.open(source)
    if run.config.optimizer != "gd":  # the state's directions would be missing from the tangent map
        raise LandscapeError(
            f"{run.path}: a {run.config.optimizer} run; the Lyapunov exponents here are of gradient descent's "
            "map θ ↦ θ − η∇F (tangent I − ηH), not of an optimizer with state"
        )
    idx = run.check_replicas(replicas)
    done = run.steps_done
    steps = done - start if steps is None else int(steps)
    if not 0 <= start < done or steps < 1 or start + steps > done:
        raise LandscapeError(f"steps {start} … {start + steps - 1} are not all recorded (0 … {done - 1})")
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
