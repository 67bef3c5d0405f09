"""A recorded run opened once: its store, config and recorded arrays, and — built on first
use — its data and engines, with θ at any step by exact replay.

Every analysis takes one of these (or a path, opened here), so a command opens and verifies
its store once, builds the dataset once and replays through one helper (`replay.walk`).

>>> from landscape.runs.opened import Run
>>> run = Run.open("data/dce_w100_A70_T5000.zarr")
>>> run.config.loss, run.ds.sizes["replica"]
('dce', 4)
>>> run.params_at([0, 10], replicas=[0]).shape
(1, 2, 603)
"""

from __future__ import annotations

from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np

from landscape import LandscapeError
from landscape.runs import build
from landscape.runs.replay import replayed_signals, walk
from landscape.store.integrity import require_intact
from landscape.store.run import ITERATE_ARRAYS, PER_STEP, RunStore

# the arrays every analysis reads whole; params and eigvec are read where needed
ANALYSED = (*PER_STEP, "gamma", "eigval", "eigres", "eigconv")


class Run:
    """One recorded run: `store` (RunStore), `config`, `ds` (the recorded xarray Dataset,
    trimmed to the flushed steps), `data` (the training data, built once)."""

    def __init__(self, store: RunStore, path):
        self.store, self.path = store, Path(path)
        self.config = store.config

    @classmethod
    def open(cls, source, *, checked: bool = True, check: tuple[str, ...] = ANALYSED) -> Run:
        """The run at `source` (a path; a Run is returned as it is).

        checked (analysis): refuse a store that is still being recorded, is damaged in the
        arrays `check`, or holds no step, so no analysis reads fill values where data should
        be. Unchecked (replay): the store as it is, also one still being recorded.
        """
        if isinstance(source, Run):
            return source
        store = RunStore.open(source)
        if checked:
            if store.status == "running":
                raise LandscapeError(
                    f"{source} is still being recorded (status 'running'); analyse it when it is complete, "
                    "or resume it if its recorder died"
                )
            require_intact(store, check)
            if store.steps_done == 0:
                raise LandscapeError(f"{source} holds no recorded steps")
        return cls(store, source)

    @cached_property
    def ds(self):
        return self.store.dataset()

    @cached_property
    def data(self):
        """The training data, checked against the digest the recording stored."""
        return build.recorded_dataset(self.config, self.store.schema.data_digest, self.path)

    @property
    def steps_done(self) -> int:
        return self.store.steps_done

    @property
    def num_replicas(self) -> int:
        return len(self.config.replicas())

    def check_replicas(self, replicas) -> list[int]:
        """The replica indices as ints, each within the store (one-line error otherwise)."""
        R = self.num_replicas
        idx = list(range(R)) if replicas is None else [int(r) for r in np.atleast_1d(replicas)]
        for r in idx:
            if not 0 <= r < R:
                raise LandscapeError(f"replica {r} out of range: the store has replicas 0..{R - 1}")
        return idx

    def saved(self, name: str, replica: int) -> np.ndarray:
        """The saved rows of `params` or `eigvec` (pstep, …) of one replica, up to the flushed
        steps (read through `RunStore.read`: a damaged chunk is one line)."""
        n = -(-self.steps_done // self.config.save_params_every)
        return self.store.read(name, (int(replica), slice(0, n)))

    def engine(self, replicas=None, device: str | None = None, dtype: str | None = None):
        """An engine of the replicas `replicas` (indices; default all), on `device` and in `dtype`
        (default the recording's: another dtype is for views, not for replaying the run)."""
        cfg = self.config if device is None else replace(self.config, device=device)
        cfg = cfg if dtype is None else replace(cfg, dtype=dtype)
        reps = cfg.replicas()
        return build.engine(cfg, self.data, None if replicas is None else [reps[i] for i in replicas])

    def params_at(self, steps, replicas=None, device: str = "cpu") -> np.ndarray:
        """θ (len(replicas), len(steps), n) at the given steps, by exact replay."""
        idx = self.check_replicas(replicas)
        steps = [int(s) for s in np.atleast_1d(steps)]
        eng = self.engine(idx, device)
        out = np.empty((len(idx), len(steps), eng.num_params))
        where: dict[int, list[int]] = {}
        for j, s in enumerate(steps):
            where.setdefault(s, []).append(j)
        for s, theta in walk(self, eng, idx, steps):
            out[:, where[s]] = theta.detach().cpu().double().numpy()[:, None]
        return out

    def recompute(self, name: str, steps, replicas=None, device: str = "cpu") -> dict[str, np.ndarray]:
        """A recorded quantity (`landscape.curvature.quantities`, by name) computed again at
        the given spectrum steps from θ replayed there, with the recording's settings:
        {array: (len(replicas), len(steps), …)}, to hold the store against."""
        from landscape.curvature import quantities

        names = [q.name for q in quantities.REGISTRY]
        if name not in names:
            raise LandscapeError(f"no recorded quantity '{name}'; the quantities are {', '.join(names)}")
        q = quantities.by_name(name)
        idx = self.check_replicas(replicas)
        steps = [int(s) for s in np.atleast_1d(steps)]
        eng = self.engine(idx, device)
        seeds = [self.config.replicas()[i].seed for i in idx]
        at: dict[int, dict] = {}
        for s, theta in walk(self, eng, idx, steps):  # the engine's optimizer state is at s here
            vals = q.compute(eng, theta, s, seeds, self.config, eng.gamma(s))
            at[s] = {key: v.detach().cpu().double().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
                     for key, v in vals.items()}  # fmt: skip
        return {key: np.stack([at[s][key] for s in steps], axis=1) for key in at[steps[0]]}

    def iterate_signals(self, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, bool]:
        """The iterate signals (R, N, 3) (‖p‖, ‖p − p_prev‖, cos) and projections (R, N, K) of
        every recorded step: read where the store holds them, else by exact replay from step 0
        (a store recorded before them). The flag says which (True: replayed)."""
        store, done = self.store, self.steps_done
        if store.iterates:
            sc = np.stack([np.asarray(store[name][:, :done]) for name in ITERATE_ARRAYS], axis=-1)
            return sc, np.asarray(store["iter_proj"][:, :done, :]), False
        sc, pj = replayed_signals(self, self.engine(device=device))
        return sc, pj, True


def open_run(path) -> Run:
    """The run at `path`, opened and checked for analysis (`Run.open`)."""
    return Run.open(path)


def params_at(path, steps, replicas=None, device: str = "cpu") -> np.ndarray:
    """θ (len(replicas), len(steps), n) at the given steps of the store at `path` (or a Run)."""
    return Run.open(path, checked=False).params_at(steps, replicas, device)


def iterate_signals(path, device: str = "cpu") -> tuple[np.ndarray, np.ndarray, bool]:
    """`Run.iterate_signals` of the store at `path` (or a Run)."""
    return Run.open(path, checked=False).iterate_signals(device)
