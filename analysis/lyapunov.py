"""Lyapunov exponents of a recorded run's training map: from the recording or by exact replay.

The training map takes the whole state — θ and the optimizer's buffers — one step on; its
tangent map (`landscape.engines.tangent`) is I − ηH_t for gradient descent and the forward-mode
derivative of the optimizer's rule around the batched Hessian-vector product for the others.
K tangent vectors per replica go through it while θ is replayed with the recording's own
arithmetic (`landscape.dynamics.lyapunov`). On a quadratic valley of curvature λ the GD exponent
is ln|1 − ηλ|: negative below the edge, zero at λ = 2/η, positive beyond; over a stretch of
training the top exponent says whether nearby trajectories converge (the bounce is stable)
or separate.

A recording made with `--lyapunov K` holds each step's log stretch (`lyap_stretch`):
`recorded` reads the exponents from it without any replay. The replay's start directions are
random (from each replica's seed and the start step), so the answer is the same whichever
replicas are asked for together, and from step 0 it is the recording's own.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.curvature.eigen import random_block
from landscape.dynamics.lyapunov import benettin
from landscape.engines import tangent as tangents
from landscape.engines.tangent import TANGENT_SALT
from landscape.runs.opened import Run
from landscape.runs.replay import walk

__all__ = ["TANGENT_SALT", "lyapunov", "recorded", "twin_separation"]


def _window(source, start: int, steps: int | None) -> tuple[Run, int]:
    """The run and the length of the stretch from `start` (default: to the end of the
    recording), refused in one line where the stretch is not all recorded."""
    run = Run.open(source)
    done = run.steps_done
    steps = done - start if steps is None else int(steps)
    if not 0 <= start < done or steps < 1 or start + steps > done:
        raise LandscapeError(f"steps {start} … {start + steps - 1} are not all recorded (0 … {done - 1})")
    return run, steps


def _coords(run: Run, idx) -> dict:
    ds = run.ds.isel(replica=idx)
    return {name: ("replica", ds[name].values) for name in ("seed", "eta", "amplitude", "period") if name in ds}


def _result(run: Run, idx, stretch: np.ndarray, start: int, window: int | None, how: str) -> xr.Dataset:
    """exponent, running and window_exponent of a stretch (R, K, S) from step `start`."""
    R, k, steps = stretch.shape
    running = np.cumsum(stretch, axis=-1) / np.arange(1, steps + 1)
    out = xr.Dataset(
        {
            "exponent": (("replica", "k"), stretch.mean(-1),
                         {"long_name": "finite-time Lyapunov exponent of the training map (per step)"}),
            "running": (("replica", "k", "step"), running, {"long_name": "exponent from the start step to each step"}),
        },
        coords={"replica": np.asarray(idx), "k": np.arange(k), "step": np.arange(start, start + steps),
                **_coords(run, idx)},
        attrs={"source": str(run.path), "start": start, "steps": steps, "optimizer": run.config.optimizer,
               "method": how},
    )  # fmt: skip
    if window:
        S = steps // int(window) * int(window)
        w = stretch[..., :S].reshape(R, k, -1, int(window)).mean(-1)
        out["window_exponent"] = (("replica", "k", "window"), w, {"long_name": f"exponent over windows of {window}"})
        out = out.assign_coords(window=start + int(window) * np.arange(w.shape[-1]))
    return out


def recorded(source, k: int | None = None, start: int = 0, steps: int | None = None, replicas=None,
             window: int | None = None) -> xr.Dataset:  # fmt: skip
    """The exponents a `--lyapunov K` recording holds: the mean of its per-step log stretch
    over steps `start` … (default: all recorded), the first k (default: all K) of them, with the
    running mean and, with `window`, the window means: no replay."""
    run, steps = _window(source, start, steps)
    K = run.config.lyapunov
    if not K:
        raise LandscapeError(f"{run.path} was recorded without --lyapunov: replay it (landscape analyze lyapunov)")
    k = K if k is None else int(k)
    if not 1 <= k <= K:
        raise LandscapeError(f"{run.path} holds {K} exponents, asked for {k}")
    idx = run.check_replicas(replicas)
    s = run.store.read("lyap_stretch", (np.asarray(idx), slice(start, start + steps), slice(0, k)), orthogonal=True)
    return _result(run, idx, np.moveaxis(s, 1, 2), start, window, "recorded")


def lyapunov(source, k: int = 2, start: int = 0, steps: int | None = None, replicas=None,
             window: int | None = None, device: str = "cpu") -> xr.Dataset:  # fmt: skip
    """The top-k finite-time exponents of each replica from step `start` over `steps` steps
    (default: to the end of the recording), by replay: `exponent` (replica, k), `running`
    (replica, k, step) and, with `window`, `window_exponent` (replica, k, window). The tangent
    vectors span θ and the optimizer's buffers (n (1 + buffers) dimensions)."""
    run, steps = _window(source, start, steps)
    idx = run.check_replicas(replicas)
    eng = run.engine(idx, device)
    N = tangents.state_size(eng)
    if not 1 <= k <= N:
        raise LandscapeError(f"k must be from 1 to the training state's {N} dimensions, got {k}")
    _, theta = next(walk(run, eng, idx, [start]))  # the optimizer's state is at `start` now
    seeds = [run.config.replicas()[i].seed for i in idx]
    V0 = random_block(seeds, k, N, start + TANGENT_SALT, eng.dtype, eng.device)

    def tangent(x, t, V):
        return tangents.apply(eng, x, t, eng.gamma(t), V)

    res = benettin(lambda x, t: eng.advance(x, t, t + 1), tangent, theta, V0, steps, t0=start)
    return _result(run, idx, res.stretch.cpu().numpy(), start, window, "replay")


def twin_separation(source, start: int, steps: int, eps=(1e-9, 1e-6, 1e-4), direction: str = "v1",
                    replicas=None, device: str = "cpu") -> xr.Dataset:  # fmt: skip
    """Finite-amplitude growth: a twin of each replica started at θ_start + ε u (u the top Hessian
    eigenvector at `start`, "v1", or a random unit vector, "random") and trained on beside it
    in one batch with the recording's step; `separation` (replica, eps, step) is ‖θ'_t − θ_t‖ / ε, and
    `growth` (replica, eps) the mean log-growth per step. For ε → 0 it is the tangent map's
    stretching of u (what the Lyapunov exponents measure); at a finite ε it is what a bounce of
    that amplitude does, which a kink of the ReLUs inside it can change. With an optimizer with
    state a twin starts with its replica's buffers (only θ is moved)."""
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
    _, both = next(walk(run, eng, rows, [start]))  # every row's optimizer state is its replica's at `start`
    theta = both[: len(idx)]
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
    return xr.Dataset(
        {
            "separation": (("replica", "eps", "step"), sep,
                           {"long_name": "‖θ'_t − θ_t‖ / ε of the twin started at distance ε"}),
            "growth": (("replica", "eps"), growth, {"long_name": "mean log-growth of the separation per step"}),
        },
        coords={"replica": np.asarray(idx), "eps": np.asarray(eps), "step": np.arange(start + 1, start + steps + 1),
                **_coords(run, idx)},
        attrs={"source": str(run.path), "start": start, "steps": steps, "direction": direction},
    )  # fmt: skip
