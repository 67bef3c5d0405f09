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
from dataclasses import dataclass, fields, replace
from pathlib import Path

import torch

from landscape import LandscapeError
from landscape.config.knobs import Knob, knob, knobs, parse, resolve_aliases
from landscape.config.run import HYPER, HYPER_KNOBS, Replica, RunConfig
from landscape.machine.memory import bytes_per_replica
from landscape.problem.losses import LOSSES


@dataclass(frozen=True)
class SweepSpec:
    """A sweep: a base `RunConfig` (η, A, T and seeds are already lists there) and the grid
    axes a single recording cannot batch: loss and width (and the step count, with
    `steps_per_eta`). Every other knob is the base config's."""

    base: RunConfig = RunConfig()
    losses: tuple = knob(
        (),
        f"losses: {', '.join(LOSSES)} (several values are a grid axis) [default: dce]",
        flag="loss",
        item=str,
        replaces="loss",
        choices=LOSSES,
    )
    widths: tuple = knob((), "hidden widths (a grid axis) [default: 100]", flag="width", item=int, replaces="width")
    steps_per_eta: float = knob(0.0, "> 0: each run takes ceil(this / η) steps (the paper: 100000)")
    batch_size: int = knob(0, "replicas per batch [default 0: from the device's memory]")

    def __post_init__(self):
        if not self.losses:
            object.__setattr__(self, "losses", (self.base.loss,))
        if not self.widths:
            object.__setattr__(self, "widths", (self.base.width,))

    def replace(self, **kw) -> SweepSpec:
        """A copy with sweep fields and/or base-config knobs changed."""
        own = {f.name for f in fields(self)}
        mine = {k: v for k, v in kw.items() if k in own}
        run = {k: v for k, v in kw.items() if k not in own}
        if run:
            mine["base"] = replace(mine.get("base", self.base), **run)
        return replace(self, **mine)

    def steps_for(self, eta: float) -> int:
        return int(math.ceil(self.steps_per_eta / eta)) if self.steps_per_eta > 0 else self.base.steps

    def num_runs(self) -> int:
        b = self.base
        return len(self.losses) * len(self.widths) * len(b.etas) * len(b.amplitudes) * len(b.periods) * len(b.seeds)

    def run_config(self, loss: str, width: int, steps: int) -> RunConfig:
        """The base config for one (loss, width, steps) group; save and flush intervals are cut
        to short runs so that they still divide sensibly."""
        b = self.base
        he = b.hessian_every
        return replace(
            b,
            loss=loss,
            width=width,
            steps=steps,
            chunk_steps=min(b.chunk_steps, _round_up(steps, he)),
            save_params_every=min(b.save_params_every, _round_up(steps, he)),
        )

    def validate(self) -> SweepSpec:
        if self.num_runs() == 0:
            axes = {
                "losses": self.losses,
                "widths": self.widths,
                "etas": self.base.etas,
                "amplitudes": self.base.amplitudes,
                "periods": self.base.periods,
                "seeds": self.base.seeds,
            }
            empty = [k for k, v in axes.items() if not v]
            raise LandscapeError(f"empty grid: no value for {', '.join(empty)}")
        if self.batch_size < 0:
            raise LandscapeError("batch-size must be >= 0 (0 = automatic)")
        if self.steps_per_eta < 0:
            raise LandscapeError("steps-per-eta must be >= 0")
        for name, vals in (("loss", self.losses), ("width", self.widths), ("eta", self.base.etas),
                           ("amplitude", self.base.amplitudes), ("period", self.base.periods),
                           ("seed", self.base.seeds)):  # fmt: skip
            dup = sorted({v for v in vals if list(vals).count(v) > 1}, key=str)
            if dup:
                raise LandscapeError(
                    f"{name} {', '.join(map(str, dup))} given twice: the grid would record identical runs"
                )
        if self.base.model and len(self.widths) > 1:
            raise LandscapeError(
                "--width is the built-in MLP's axis and does nothing with --model; give the factory's "
                "size as a --model-arg and run one sweep per value"
            )
        for loss, width, eta in itertools.product(self.losses, self.widths, self.base.etas):
            # every value check of the recorder, before anything is written
            replace(self.run_config(loss, width, self.steps_for(eta)), etas=(eta,)).validate()
        return self

    def batches(self, input_dim: int = 2, num_classes: int = 3, points: int = 300) -> list[RunConfig]:
        """The packed batches: one RunConfig (explicit replica table) per batch, in a fixed order."""
        b = self.base
        groups: dict[tuple, list] = {}
        hyper = [getattr(b, HYPER_KNOBS[h]) for h in HYPER]  # the optimizer's, a replica coordinate each
        for loss, width, eta, A, T, seed, *h in itertools.product(
            self.losses, self.widths, b.etas, b.amplitudes, b.periods, b.seeds, *hyper
        ):
            groups.setdefault((loss, width, self.steps_for(eta)), []).append(
                Replica(int(seed), float(eta), float(A), int(T), *(float(v) for v in h))
            )
        out = []
        for (loss, width, steps), rows in groups.items():
            cfg = self.run_config(loss, width, steps)
            size = self.batch_size or auto_batch_size(cfg, input_dim, num_classes, points)
            for i in range(0, len(rows), size):
                out.append(replace(cfg, replica_table=tuple(rows[i : i + size])))
        return out

    def to_json(self) -> str:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "base"}
        d["base"] = json.loads(self.base.to_json())
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SweepSpec:
        raw = json.loads(text)
        if "base" not in raw:  # sweep stores written before the spec held a base config (flat keys)
            own = {f.name for f in fields(cls)}
            run = {k: v for k, v in raw.items() if k not in own and k != "eig_max_iter"}
            raw = {k: v for k, v in raw.items() if k in own}
            raw["base"] = json.loads(RunConfig().to_json()) | run
        base = RunConfig.from_json(json.dumps(raw.pop("base")))
        return cls(
            base=base,
            losses=tuple(raw.get("losses", ())),
            widths=tuple(raw.get("widths", ())),
            steps_per_eta=float(raw.get("steps_per_eta", 0.0)),
            batch_size=int(raw.get("batch_size", 0)),
        )


def _round_up(x: int, m: int) -> int:
    return max(m, -(-x // m) * m)


def auto_batch_size(cfg: RunConfig, input_dim=2, num_classes=3, points=300) -> int:
    """Replicas per batch: on a GPU as many as half its free memory holds (≤ 4096); on
    the CPU 64, where bench/bench_engine.py finds the rate flat and memory is no limit."""
    per = bytes_per_replica(cfg, input_dim, num_classes, points)
    if torch.device(cfg.device).type == "cuda" and torch.cuda.is_available():
        free, _ = torch.cuda.mem_get_info(torch.device(cfg.device))
        return int(max(1, min(4096, free // 2 // per)))
    return 64


def load_toml(path) -> SweepSpec:
    """A sweep from a TOML file: keys are the options' names (`eta = [0.5, 1.0]`, `seeds = 30`,
    `hessian_every = 25`, field names such as `etas` too); unknown keys are errors."""
    p = Path(path)
    if p.exists() and not p.is_file():
        raise LandscapeError(f"sweep file {path} is a directory, not a TOML file")
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise LandscapeError(f"sweep file {path} does not exist") from None
    except OSError as exc:
        raise LandscapeError(f"cannot read sweep file {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise LandscapeError(f"{path}: not valid TOML ({exc})") from None
    if "data" in raw and not isinstance(raw["data"], str):
        raise LandscapeError(f"{path}: data: expected a file path (text), got {raw['data']!r}")
    if raw.get("data"):  # relative to the TOML file, not to the cwd
        raw["data"] = str((p.resolve().parent / raw["data"]).resolve())
    return spec_from_values(raw, source=str(path))


def sweep_knobs() -> list[Knob]:
    """The sweep's knobs: its own axes, then every run knob that no axis replaces."""
    own = knobs(SweepSpec)
    replaced = {k.replaces for k in own}
    return own + [k for k in knobs(RunConfig) if k.name not in replaced]


def spec_from_values(values: dict, base: SweepSpec | None = None, source: str = "") -> SweepSpec:
    """A SweepSpec from {key: value} (TOML values or command-line text), keys by option or
    field name, over `base` (default: all defaults)."""
    by_key = {}
    for k in sweep_knobs():
        by_key[k.key] = by_key[k.name] = k
    values = resolve_aliases(sweep_knobs(), values)
    unknown = sorted(set(values) - set(by_key))
    if unknown:
        where = f"{source}: " if source else ""
        raise LandscapeError(f"{where}unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(by_key))}")
    kw = {by_key[key].name: parse(by_key[key], v) for key, v in values.items() if v is not None}
    return (base or SweepSpec()).replace(**kw)
