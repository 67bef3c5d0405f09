"""Building what a config describes: the dataset, the network and the engine, in one place.

The config (`landscape.config.run`) only holds and validates; the recorder, the replay and
the analyses build through these functions, so a run, its resume and its replay are built
the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from landscape import LandscapeError
from landscape.config.run import DTYPES, Replica, RunConfig
from landscape.machine import memory
from landscape.problem import benchmarks
from landscape.problem.data import Dataset, load_dataset, spiral_dataset
from landscape.problem.mlp import MLPSpec
from landscape.problem.schedule import static_start


def dataset(cfg: RunConfig) -> Dataset:
    """The training (and validation) data: the `--data` file, else the spiral of the config."""
    if cfg.data and benchmarks.parse(cfg.data) is not None:
        return benchmarks.load(cfg.data, cfg.data_seed, cfg.val_seed)
    if cfg.data:
        return load_dataset(cfg.data)
    return spiral_dataset(cfg.n_per_class, 3, cfg.data_seed, cfg.val_seed)


def recorded_dataset(cfg: RunConfig, digest: str | None, where) -> Dataset:
    """The data a recording was made on, checked against the digest it stored: what recomputes
    from θ (replay, views, resume) on data that changed since would be computed on the wrong
    thing, so that is refused, naming the file and both digests."""
    data = dataset(cfg)
    if digest and digest != data.digest():
        raise LandscapeError(
            f"{where}: the data differ from those the run was recorded on ({data.source}: digest "
            f"{data.digest()[:16]} now, {str(digest)[:16]} when recorded); restore them to analyse or resume this run"
        )
    return data


def mlp_spec(cfg: RunConfig, data: Dataset) -> MLPSpec:
    """The built-in MLP for these data (2-D inputs)."""
    if data.X.ndim != 2:
        raise LandscapeError(
            f"the built-in MLP takes 2-D inputs (samples × features), the data have shape "
            f"{data.X.shape}; give --model for your own network"
        )
    return MLPSpec(data.input_dim, cfg.width, data.num_classes, cfg.depth, cfg.activation, cfg.softplus_beta)


def factory(cfg: RunConfig):
    """`seed -> nn.Module` from `--model` and `--model-arg` (landscape.problem.usermodel)."""
    from landscape.problem.usermodel import load_factory

    return load_factory(cfg.model, cfg.model_args)


def num_params(cfg: RunConfig, data: Dataset) -> int:
    if cfg.model:
        return sum(p.numel() for p in factory(cfg)(0).parameters())
    return mlp_spec(cfg, data).num_params


def check_fits(cfg: RunConfig, data: Dataset | None = None) -> None:
    """What validation cannot see without the data: the memory the recording needs (on the
    spiral's dimensions before it is drawn, when data is None) and top-k within the network."""
    if data is None:
        memory.require_recording(cfg)
        return
    if cfg.model:
        from landscape.problem.usermodel import check_model

        reps = cfg.replicas()
        try:
            n = check_model(factory(cfg), data.X, data.num_classes, [r.seed for r in reps])
            # two replicas through vmap, grad and an HVP: what only the batched engine shows
            engine(cfg, data, reps[:2]).probe()
        except LandscapeError as exc:  # name the model in every one of its failures
            where, _, name = str(cfg.model).rpartition(":")
            text = str(exc).removeprefix("--model:").removeprefix("--model").strip()
            raise LandscapeError(f"--model {Path(where).name}:{name}: {text}") from None
    else:
        n = mlp_spec(cfg, data).num_params
    memory.require_recording(cfg, data.input_dim, data.num_classes, data.X.shape[0], n)
    if cfg.top_k + cfg.eig_oversample > n:
        raise LandscapeError(
            f"top-k ({cfg.top_k}) + eig-oversample ({cfg.eig_oversample}) exceeds the network's {n} parameters"
        )
    if cfg.ggn_k and cfg.ggn_k + cfg.eig_oversample > n:
        raise LandscapeError(
            f"ggn-k ({cfg.ggn_k}) + eig-oversample ({cfg.eig_oversample}) exceeds the network's {n} parameters"
        )
    if cfg.bottom_k > n:
        raise LandscapeError(f"bottom-k ({cfg.bottom_k}) exceeds the network's {n} parameters")


def engine(cfg: RunConfig, data: Dataset, replicas: Sequence[Replica] | None = None):
    """The engine for these replicas (default: all of the config's table): the MLP engine
    with the config's step strategy, or the torch.func engine for a user's model."""
    reps = cfg.replicas() if replicas is None else replicas
    static = [static_start(cfg.steps, r.period) for r in reps] if cfg.static_last else None
    common: dict[str, Any] = dict(
        data=data,
        loss=cfg.loss,
        eta=[r.eta for r in reps],
        amplitude=[r.amplitude for r in reps],
        period=[r.period for r in reps],
        static_from=static,
        gamma_shape=cfg.gamma_shape,
        dtype=DTYPES[cfg.dtype],
        device=cfg.device,
        optimizer=cfg.optimizer,
        hyper=cfg.hyper(reps),
        chunk=cfg.chunk,
    )
    if cfg.model:
        from landscape.engines.module import ModuleEngine

        return ModuleEngine(factory(cfg), [r.seed for r in reps], **common)
    from landscape.engines.mlp import MLPEngine

    return MLPEngine(mlp_spec(cfg, data), **common, step=cfg.step)
