"""θ at any recorded step by deterministic replay from the nearest saved vector.

Training is full-batch gradient descent with no randomness, so θ_t follows from θ_p (p ≤ t,
the last saved vector) by re-applying the updates p … t−1 with the arithmetic the recorder
used (the engine's step strategy). `walk` is the one replay loop: θ of some replicas at a
sorted set of steps, restarting from a saved vector only where that is shorter. `run` is an
opened run (`opened.Run`: its store, config and step count).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from landscape import LandscapeError
from landscape.dynamics.iterates import Tracker, directions


def saved(run, engine, replicas: list[int], p: int) -> torch.Tensor:
    """The saved θ (len(replicas), n) at step p (a multiple of save_params_every); the
    optimizer's state saved beside it is put into the engine, so replay goes on from there."""
    pe = run.config.save_params_every
    theta = torch.as_tensor(run.store.read("params", (np.asarray(replicas), p // pe, slice(None)), orthogonal=True))
    engine.set_optimizer_state(run.store.saved_state(p, replicas), p)
    return theta.to(engine.dtype).to(engine.device)


def walk(run, engine, replicas: list[int], steps) -> Iterator[tuple[int, torch.Tensor]]:
    """(t, θ_t) of `replicas` (rows of `engine`, in this order) for each distinct step t of
    `steps` in increasing order, replayed from the saved vectors."""
    done, pe = run.steps_done, run.config.save_params_every
    wanted = sorted({int(s) for s in np.atleast_1d(steps)})
    for s in wanted:
        if not 0 <= s < done:
            raise LandscapeError(f"step {s} out of range: the store holds steps 0..{done - 1}")
    cur, theta = -1, torch.empty(0)
    for s in wanted:
        p = (s // pe) * pe
        if cur < p:  # from the saved vector: never longer than going on
            theta, cur = saved(run, engine, replicas, p), p
        theta = engine.advance(theta, cur, s)
        cur = s
        yield s, theta


def replayed_signals(run, engine) -> tuple[np.ndarray, np.ndarray]:
    """The iterate signals (R, N, 3) and projections (R, N, K) of every recorded step of all
    replicas of `engine`, by exact replay from step 0 (for a store recorded before them)."""
    theta = saved(run, engine, list(range(engine.R)), 0)
    U = torch.as_tensor(directions(theta.shape[1])).to(theta)
    track = Tracker(theta, 0, U)
    engine.advance_tracked(theta, 0, run.steps_done, track)
    return track.take(0, run.steps_done)
