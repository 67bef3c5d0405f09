"""Is a store intact? Every chunk that should hold data is there and decodes (with its CRC-32C
checksum, written at flush time, where the store has one), and `steps_done` matches.

`check` reads a store chunk by chunk and returns a report naming each damaged array, chunk
and step range; `landscape check`, the analysis and `--resume` use it, so a damaged store
is refused with the same message everywhere instead of being analysed as fill values.
"""

from __future__ import annotations

import itertools
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from landscape import LandscapeError
from landscape.store.run import RunStore, layout, lyapunov_windows

# the time axis of each array, and how a chunk index maps to steps
_TIME_DIMS = ("step", "hstep", "pstep", "lwindow")


@dataclass(frozen=True)
class Damage:
    array: str
    chunk: tuple[int, ...]
    steps: tuple[int, int]  # [first, last] recorded step the chunk covers
    reason: str

    def __str__(self) -> str:
        return f"array '{self.array}' chunk {self.chunk} (steps {self.steps[0]}–{self.steps[1]}): {self.reason}"


@dataclass(frozen=True)
class Report:
    path: str
    steps_done: int
    chunks_read: int
    damaged: tuple[Damage, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.damaged

    @property
    def first_damaged_step(self) -> int | None:
        return min((d.steps[0] for d in self.damaged), default=None)

    def summary(self) -> str:
        if self.ok:
            return f"{self.path}: intact ({self.chunks_read} chunks read, {self.steps_done} steps)"
        more = f" and {len(self.damaged) - 1} more" if len(self.damaged) > 1 else ""
        return (
            f"{self.path} is damaged: {self.damaged[0]}{more} (first damaged step {self.first_damaged_step}); "
            f"see: landscape check {shlex.quote(self.path)}"
        )


def _time_steps(store: RunStore, dim: str) -> np.ndarray:
    cfg = store.config
    if dim == "step":
        return np.arange(cfg.steps)
    if dim == "hstep":
        return cfg.hessian_steps()
    if dim == "lwindow":  # a window is recorded once its last step is
        return lyapunov_windows(cfg) + cfg.lyapunov_window - 1
    return np.arange(cfg.steps)[:: cfg.save_params_every]


def check(path, arrays: tuple[str, ...] | None = None) -> Report:
    """Read every chunk of `arrays` (default: all) that holds recorded steps. `path` may be a
    store already opened (its metadata verified then), so a caller does not open it twice."""
    store = path if isinstance(path, RunStore) else RunStore.open(path)  # verifies the metadata
    path = store.path
    done = store.steps_done
    C, n = int(store.attrs["num_classes"]), int(store.attrs["num_params"])
    damaged: list[Damage] = []
    read = 0
    sch = store.schema
    for name, (dims, shape, _, _, _) in layout(
        store.config, C, n, sch.layers, sch.iterates, sch.ckpt_vectors, sch.edge
    ).items():
        if arrays is not None and name not in arrays:
            continue
        if not dims:  # the resume state
            found = _state(store, name, done)
            read += found[0]
            damaged += found[1]
            continue
        tdim = next((d for d in dims if d in _TIME_DIMS), None)
        if tdim is None:  # coordinates, written whole at creation: read whole
            read += 1
            try:
                store[name][...]
            except Exception as exc:
                damaged.append(Damage(name, (0,), (0, 0), _reason(exc)))
            continue
        ax = dims.index(tdim)
        steps = _time_steps(store, tdim)
        recorded = int(np.searchsorted(steps, done))  # entries of the time axis below steps_done
        arr = store[name]
        chunks = tuple(arr.chunks)  # the store's own (the layout's rule may have changed since it was made)
        grid = [range(-(-s // c)) for s, c in zip(shape, chunks)]
        for idx in itertools.product(*grid):
            lo = idx[ax] * chunks[ax]
            if lo >= recorded:
                continue
            hi = min(lo + chunks[ax], recorded)
            span = (int(steps[lo]), int(steps[hi - 1]))
            key = Path(path) / name / "c" / "/".join(map(str, idx))
            read += 1
            if not key.is_file():
                damaged.append(Damage(name, idx, span, "chunk file missing"))
                continue
            sel = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))
            try:
                arr[sel]
            except Exception as exc:  # checksum mismatch, decompression error, truncated chunk, …
                damaged.append(Damage(name, idx, span, _reason(exc)))
    return Report(str(path), done, read, tuple(damaged))


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:80]}"


def _state(store: RunStore, name: str, done: int) -> tuple[int, list[Damage]]:
    """The two resume slots: each one written must decode, and past step 0 one of them must
    hold `steps_done` (a resume starts there)."""
    arr, damaged, read, holds = store[name], [], 0, False
    grid = list(itertools.product(*(range(-(-s // c)) for s, c in zip(arr.shape[1:], arr.chunks[1:]))))
    for slot in range(arr.shape[0]):
        keys = [Path(store.path) / name / "c" / str(slot) / "/".join(map(str, idx)) for idx in grid]
        there = [k.is_file() for k in keys]
        if not any(there):  # never written
            continue
        read += sum(there)
        if not all(there):  # a slot is written whole: a piece missing is damage
            idx = grid[there.index(False)]
            damaged.append(Damage(name, (slot, *idx), (done, done), "chunk file missing"))
            continue
        try:
            holds |= bool(np.asarray(arr[slot, 0, 0]) == done)
            arr[slot]
        except Exception as exc:
            damaged.append(Damage(name, (slot, 0, 0), (done, done), _reason(exc)))
    if done and not holds and not damaged:
        damaged.append(Damage(name, (0, 0, 0), (done, done), f"no resume slot holds step {done}"))
    return read, damaged


def require_intact(path, arrays: tuple[str, ...] | None = None) -> Report:
    """`check`, raising LandscapeError with the report's one-line summary if damaged."""
    report = check(path, arrays)
    if not report.ok:
        raise LandscapeError(report.summary())
    return report
