"""What a sweep is: a grid over loss × width × η × A × T × seeds, and how it is packed.

Runs that share loss, width and number of steps can train in one batched engine;
each such group is cut into batches small enough for the device. Each batch is
a `RunConfig` with an explicit replica table, recorded as its own run store.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch

from . import LandscapeError
from .config import RunConfig

GRID_KEYS = ("losses", "etas", "amplitudes", "periods", "widths")
RUN_KEYS = ("steps", "steps_per_eta", "hessian_every", "hessian_pairs", "top_k", "eig_tol", "save_params_every", "chunk_steps",
            "gamma_shape", "static_last", "dtype", "device", "until", "until_margin", "n_per_class", "data",
            "data_seed", "val_seed", "depth", "activation")


@dataclass(frozen=True)
class SweepSpec:
    losses: tuple = ("dce",)
    etas: tuple = (1.0,)
    amplitudes: tuple = (70.0,)
    periods: tuple = (5000,)
    widths: tuple = (100,)
    seeds: tuple = (0,)
    steps: int = 10000
    steps_per_eta: float = 0.0  # > 0: each run takes ceil(steps_per_eta / η) steps (the paper: 100000)
    batch_size: int = 0  # 0: chosen from the device's memory
    hessian_every: int = 50
    hessian_pairs: bool = True
    top_k: int = 2
    eig_tol: float = 1e-3
    save_params_every: int = 1000
    chunk_steps: int = 1000
    gamma_shape: str = "triangle"
    static_last: bool = False
    dtype: str = "float64"
    device: str = "cpu"
    until: str = "end"
    until_margin: int = 200
    n_per_class: int = 100
    data: str | None = None
    data_seed: int = 0
    val_seed: int = 1
    depth: int = 1
    activation: str = "relu"

    def steps_for(self, eta: float) -> int:
        return int(math.ceil(self.steps_per_eta / eta)) if self.steps_per_eta > 0 else self.steps

    def num_runs(self) -> int:
        return math.prod(len(getattr(self, k)) for k in GRID_KEYS) * len(self.seeds)

    def base(self, loss: str, width: int, steps: int) -> RunConfig:
        kw = {k: getattr(self, k) for k in RUN_KEYS if k in {f.name for f in fields(RunConfig)}}
        kw.update(loss=loss, width=width, steps=steps)
        # save/chunk intervals must divide sensibly into short runs too
        kw["chunk_steps"] = min(self.chunk_steps, _round_up(steps, self.hessian_every))
        kw["save_params_every"] = min(self.save_params_every, _round_up(steps, self.hessian_every))
        return RunConfig(**kw)

    def validate(self) -> "SweepSpec":
        if self.num_runs() == 0:
            empty = [k for k in GRID_KEYS + ("seeds",) if len(getattr(self, k)) == 0]
            raise LandscapeError(f"empty grid: no value for {', '.join(empty)}")
        if self.batch_size < 0:
            raise LandscapeError("--batch-size must be >= 0 (0 = automatic)")
        if self.steps_per_eta < 0:
            raise LandscapeError("--steps-per-eta must be >= 0")
        for loss, width, eta in itertools.product(self.losses, self.widths, self.etas):
            # every value check of the recorder, before anything is written
            replace(self.base(loss, width, self.steps_for(eta)), etas=(eta,), amplitudes=self.amplitudes,
                    periods=self.periods, seeds=self.seeds).validate()
        return self

    def batches(self, input_dim: int = 2, num_classes: int = 3, points: int = 300) -> list[RunConfig]:
        """The packed batches: one RunConfig (explicit replica table) per batch, in a fixed order."""
        groups: dict[tuple, list] = {}
        for loss, width, eta, A, T, seed in itertools.product(self.losses, self.widths, self.etas, self.amplitudes,
                                                              self.periods, self.seeds):
            groups.setdefault((loss, width, self.steps_for(eta)), []).append((int(seed), float(eta), float(A), int(T)))
        out = []
        for (loss, width, steps), rows in groups.items():
            size = self.batch_size or auto_batch_size(self.base(loss, width, steps), input_dim, num_classes, points)
            for i in range(0, len(rows), size):
                out.append(replace(self.base(loss, width, steps), replica_table=tuple(rows[i : i + size])))
        return out

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SweepSpec":
        raw = json.loads(text)
        for k in GRID_KEYS + ("seeds",):
            raw[k] = tuple(raw[k])
        return cls(**raw)


def _round_up(x: int, m: int) -> int:
    return max(m, -(-x // m) * m)


def bytes_per_replica(cfg: RunConfig, input_dim=2, num_classes=3, points=300) -> int:
    """Working memory of one replica in the engine: activations of the training and
    validation passes, the HVP cache and the Lanczos basis."""
    size = 8 if cfg.dtype == "float64" else 4
    n = (input_dim * cfg.width + cfg.width) + (cfg.depth - 1) * (cfg.width**2 + cfg.width) + cfg.width * num_classes + num_classes
    acts = 12 * points * cfg.width * cfg.depth
    lanczos = 2 * cfg.eig_max_iter * n
    return size * (acts + lanczos + 8 * n)


def auto_batch_size(cfg: RunConfig, input_dim=2, num_classes=3, points=300) -> int:
    """Replicas per batch: on a GPU as many as half its free memory holds (≤ 4096); on
    the CPU 64, where bench/bench_engine.py finds the rate flat and memory is no limit."""
    per = bytes_per_replica(cfg, input_dim, num_classes, points)
    if torch.device(cfg.device).type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(cfg.device))
        return int(max(1, min(4096, free // 2 // per)))
    return 64


def store_bytes(cfg: RunConfig, num_params: int, num_classes: int = 3) -> int:
    """Uncompressed size of one batch's store."""
    R = len(cfg.replicas())
    nh = len(cfg.hessian_steps())
    npar = -(-cfg.steps // cfg.save_params_every)
    per = cfg.steps * (4 + num_classes) + nh * cfg.top_k * 3 + npar * num_params * (1 + cfg.top_k)
    return 8 * R * per


def load_toml(path) -> dict:
    """Sweep settings from a TOML file: grid keys take lists, the rest scalars; unknown keys are errors."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise LandscapeError(f"sweep file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LandscapeError(f"{path}: not valid TOML ({exc})") from None
    alias = {"loss": "losses", "eta": "etas", "amplitude": "amplitudes", "period": "periods", "width": "widths"}
    known = set(GRID_KEYS) | set(alias) | {"seeds", "batch_size"} | set(RUN_KEYS)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise LandscapeError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    out = {}
    for k, v in raw.items():
        k = alias.get(k, k)
        if k in GRID_KEYS:
            out[k] = tuple(v) if isinstance(v, list) else (v,)
        elif k == "seeds":
            out[k] = tuple(range(v)) if isinstance(v, int) else tuple(v)
        else:
            out[k] = v
    return out
