"""Rebuild θ at any recorded step by deterministic replay from the nearest saved vector.

Training is full-batch gradient descent with no randomness, so θ_t follows from
θ_p (p ≤ t, the last saved vector) by re-applying the updates p … t−1 with the
same arithmetic the recorder used. The analysis uses this for loss slices that
need x_t … x_{t+20}.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from landscape import LandscapeError
from landscape.dynamics.iterates import Tracker, directions
from landscape.store.run import ITERATE_ARRAYS, RunStore


def params_at(path, steps, replicas=None, device: str = "cpu") -> np.ndarray:
    """θ (len(replicas), len(steps), n) at the given steps of the store at `path`."""
    store = RunStore.open(path)
    cfg = store.config
    done = store.steps_done
    reps_all = cfg.replicas()
    idx = list(range(len(reps_all))) if replicas is None else [int(r) for r in np.atleast_1d(replicas)]
    for r in idx:
        if not 0 <= r < len(reps_all):
            raise LandscapeError(f"replica {r} out of range: the store has replicas 0..{len(reps_all) - 1}")
    steps = [int(s) for s in np.atleast_1d(steps)]
    for s in steps:
        if not 0 <= s < done:
            raise LandscapeError(f"step {s} out of range: the store holds steps 0..{done - 1}")
    cfg = replace(cfg, device=device)
    engine = cfg.engine(cfg.dataset(), [reps_all[i] for i in idx])
    pe = cfg.save_params_every
    stored = store["params"]
    out = np.empty((len(idx), len(steps), engine.num_params))
    cur_t, theta = -1, torch.empty(0)
    for j in np.argsort(steps, kind="stable"):
        s = steps[j]
        p = (s // pe) * pe
        if cur_t < p or cur_t > s:  # restart from the saved vector
            theta = torch.as_tensor(stored.oindex[np.asarray(idx), p // pe, :]).to(engine.dtype).to(engine.device)
            cur_t = p
        theta = engine.advance(theta, cur_t, s)
        cur_t = s
        out[:, j] = theta.detach().cpu().double().numpy()
    return out


def iterate_signals(path, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, bool]:
    """The iterate signals (R, N, 3) (‖p‖, ‖p − p_prev‖, cos) and projections (R, N, K) of every
    recorded step: read where the store holds them, else by exact replay from step 0 (a store
    recorded before them). The flag says which (True: replayed)."""
    store = RunStore.open(path)
    done = store.steps_done
    if store.iterates:
        sc = np.stack([np.asarray(store[name][:, :done]) for name in ITERATE_ARRAYS], axis=-1)
        return sc, np.asarray(store["iter_proj"][:, :done, :]), False
    cfg = replace(store.config, device=device)
    engine = cfg.engine(cfg.dataset())
    theta = torch.as_tensor(np.asarray(store["params"][:, 0, :])).to(engine.dtype).to(engine.device)
    U = torch.as_tensor(directions(theta.shape[1])).to(theta)
    track = Tracker(theta, 0, U)
    engine.advance_tracked(theta, 0, done, track)
    sc, pj = track.take(0, done)
    return sc, pj, True
