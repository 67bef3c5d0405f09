"""The run store: one chunked, compressed Zarr v3 directory per recording.

Recorders write it, the analysis reads it; this module is the only place that
knows its layout. Arrays are allocated at their full length when the store is
created (chunks not yet written read as NaN), so shapes never change while
recording: a flush writes whole chunks (each an atomic file rename in zarr's local
store), then the resume state, then `steps_done`. After a crash the store opens
and everything below `steps_done` is complete.

Layout (dimensions in brackets):
  loss, loss_static, train_acc, val_acc   [replica, step]
  gamma                                   [replica, step, class]
  eigval, eigres, eigconv                 [replica, hstep, eig]
  the optional quantities (landscape.curvature.quantities), each [replica, hstep, *its dims]:
  layer_eigval, layer_eigres [layer] (--layer-spectra); trace, trace_se (--trace-samples);
  slq_nodes, slq_weights [vec, node] (--density-steps); lambda_min, lambda_min_res,
  lambda_min_conv [bottom] (--bottom-k); grad_norm (--grad-norm); ggn_eigval, ggn_eigres,
  ggn_conv [ggn] (--ggn-k, the Gauss–Newton matrix's top-k); and [replica, step, class]:
  class_train_acc, class_val_acc (--class-accuracy, at the --eval-every steps, NaN between)
  eigvec                                  [replica, pstep, eig, param]
  params                                  [replica, pstep, param]
  opt_v | opt_s | opt_m, opt_s            [replica, pstep, param]   the optimizer's state beside θ
                                          (momentum/nesterov | rmsprop | adam; none for gd)
  iter_p, iter_q, iter_cos                [replica, step]   the iterates' period-2 signal
  iter_proj                               [replica, step, proj]   (landscape.dynamics.iterates)
  iter_dirs                               [proj, param]     its projection directions
  lyap_stretch                            [replica, step, lyap]   (--lyapunov K) each step's log stretch
                                          of the K tangent vectors (Benettin: their means are the exponents)
  lyap_window                             [replica, lwindow, lyap]   (--lyapunov-window W) the exponents over
                                          consecutive windows of W steps (lwindow: each window's first step)
  coordinates: replica, step, hstep, pstep, eig, class, layer, proj, vec, node, bottom; per replica seed, eta,
  amplitude, period, loss_name, width, edge (the optimizer's stability threshold)
  state/ckpt  the parameters (the optimizer's state and the warm-start vectors) at `steps_done`, two slots
  state/tangent  the Lyapunov tangent vectors at `steps_done` (--lyapunov), in the same slot as state/ckpt
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.core.common import JSON

from landscape import LandscapeError, __version__
from landscape.config.run import HYPER, RunConfig
from landscape.curvature import quantities
from landscape.dynamics.iterates import NUM_DIRS
from landscape.store import schema as schemas
from landscape.store.schema import SCHEMA_VERSION  # noqa: F401 (the store's version, where users look)

# zstd, then a CRC-32C of each compressed chunk: a damaged chunk fails to read instead of
# decoding to wrong numbers (landscape.store.integrity reads them all)
COMPRESSORS = (ZstdCodec(level=0), Crc32cCodec())
PER_STEP = ("loss", "loss_static", "train_acc", "val_acc")
REPLICA_COORDS = ("seed", "eta", "amplitude", "period", "loss_name", "width", "edge", *HYPER)
ATTRS = {
    "loss": ("dynamical loss F_t(θ_t), the loss being minimised", ""),
    "loss_static": ("static counterpart (ce or mse) at θ_t", ""),
    "train_acc": ("training accuracy at θ_t", ""),
    "val_acc": ("validation accuracy at θ_t (NaN without validation data and between --eval-every steps)", ""),
    "gamma": ("class weights Γ_i(t)", ""),
    "eigval": ("top-k Hessian eigenvalues of F_t at θ_t, largest first", ""),
    "eigres": ("residual ‖Hv − λv‖ of each eigenpair", ""),
    "eigconv": ("eigenpair converged (residual ≤ eig_tol·|λ1|)", ""),
    "eigvec": ("top-k Hessian eigenvectors at the steps with saved parameters", ""),
    "params": ("flattened network parameters θ_t", ""),
    "edge": ("the optimizer's stability threshold on the sharpness (of P⁻¹H for rmsprop and adam)", ""),
    "beta": ("momentum β (momentum, nesterov)", ""),
    "alpha": ("RMSProp's α", ""),
    "beta1": ("Adam's β1", ""),
    "beta2": ("Adam's β2", ""),
    "eps": ("ε of rmsprop and adam", ""),
    "opt_v": ("the momentum buffer v_t (torch.optim's momentum_buffer) at the saved steps", ""),
    "opt_m": ("Adam's first-moment average m_t at the saved steps", ""),
    "opt_s": ("the squared-gradient average s_t (RMSProp's square_avg, Adam's exp_avg_sq) at the saved steps", ""),
    "iter_p": ("‖p_t‖, p_t = θ_{t+1} − 2θ_t + θ_{t−1} (the iterates' second difference)", ""),
    "iter_q": ("‖p_t − p_{t−1}‖ (the iterates' third difference: a bounce's alternating amplitude)", ""),
    "iter_cos": ("cos(p_t, p_{t−1}): −1 for a bounce across a valley, +1 for a smooth path", ""),
    "iter_proj": ("u_k · θ_t on the fixed random unit directions iter_dirs", ""),
    "lyap_stretch": (
        "log stretch of the k-th tangent vector through the step from θ_t (Benettin's log |R_kk|; "
        "its mean over steps is the k-th finite-time Lyapunov exponent)",
        "",
    ),
    "lyap_window": ("finite-time Lyapunov exponent over the window of steps starting at lwindow", ""),
}
ITERATE_ARRAYS = ("iter_p", "iter_q", "iter_cos")
TOPK_ARRAYS = ("eigval", "eigres", "eigconv")  # what every spectrum step writes, beside the quantities


def long_name(name: str) -> str | None:
    """What an array holds: the store's own arrays here, a quantity's in its declaration."""
    if name in ATTRS:
        return ATTRS[name][0]
    return next((a.long_name for q in quantities.REGISTRY for a in q.arrays if a.name == name), None)


def _every_chunk(method):
    """Write chunks even where they equal the fill value (zarr skips those by default): a
    missing chunk file must mean damage to `landscape.store.integrity`, never "all zeros" (a
    single-seed coordinate [0]) or "all NaN" (validation accuracy without validation data)."""

    @functools.wraps(method)
    def wrapper(*args, **kw):
        with zarr.config.set({"array.write_empty_chunks": True}):
            return method(*args, **kw)

    return wrapper


def _versions() -> dict:
    import torch
    import xarray

    return {
        "landscape": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "zarr": zarr.__version__,
        "xarray": xarray.__version__,
    }


def _git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        rev = out.stdout.strip()
        if out.returncode == 0 and rev:
            dirty = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=here,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
            return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def time_axes(cfg: RunConfig):
    """(step, hstep, pstep) coordinate arrays of a recording."""
    step = np.arange(cfg.steps)
    return step, cfg.hessian_steps(), step[:: cfg.save_params_every]


def lyapunov_windows(cfg: RunConfig) -> np.ndarray:
    """The first step of each whole window of `lyapunov_window` steps (empty without windows)."""
    W = cfg.lyapunov_window
    return np.arange(cfg.steps // W) * W if cfg.lyapunov and W else np.arange(0)


def tangent_size(cfg: RunConfig, num_params: int) -> int:
    """The length of a Lyapunov tangent vector: θ and each of the optimizer's buffers."""
    return num_params * (1 + len(cfg.optimizer_buffers()))


def is_store(path) -> bool:
    p = Path(path)
    if not (p / "zarr.json").is_file():
        return False
    try:
        meta = json.loads((p / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    attrs = meta.get("attributes") if isinstance(meta, dict) else None
    return isinstance(attrs, dict) and "landscape_schema" in attrs


STATUSES = ("interrupted", "running", "complete", "failed")


def check_out(path: Path, overwrite: bool):
    """Refuse an existing path unless overwrite; check the parent is writable. Changes nothing."""
    if path.exists():
        if not overwrite:
            raise LandscapeError(f"{path} already exists; use --resume to continue it or --overwrite to replace it")
        if not is_store(path) and any(path.iterdir() if path.is_dir() else [True]):
            raise LandscapeError(f"{path} exists and is not a landscape store; refusing to overwrite it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise LandscapeError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise LandscapeError(f"cannot write {path}: directory {parent} is not writable")
    require_new_files(parent, path)


def require_new_files(folder: Path, target) -> None:
    """Refuse, in one line naming `target`, a folder where no file can be made: permissions are
    not everything (/proc, read-only mounts, full disks), so it is tried."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise LandscapeError(f"cannot write {target}: {folder} does not accept new files ({exc.strerror})") from None


def prepare_out(path: Path, overwrite: bool):
    """check_out, then remove what --overwrite replaces."""
    check_out(path, overwrite)
    if path.exists():
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def consolidate(path):
    """Refresh consolidated metadata so `xarray.open_zarr(path)` opens without a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
        zarr.consolidate_metadata(str(path))


def _writer_root(path) -> zarr.Group:
    """The root group for a writer, on the consolidated metadata refreshed just before. An
    attribute update through it (the recorder's `steps_done` at every flush) is then one atomic
    write of zarr.json that keeps the consolidated view, where through a root opened without them
    zarr drops that view and a new consolidation reads every array's metadata again (the cost:
    docs/performance.md). The layout is fixed at creation, so the view cannot go stale while
    the writer holds the store's lock."""
    return zarr.open_group(str(path), mode="r+", use_consolidated=True)


VECTOR_CHUNK = 2**20  # numbers in one chunk of a parameter-sized array: 8 MB in float64


def vector_chunks(R: int, n: int, per: int = 1, cap: int = 256) -> tuple[int, int]:
    """(replicas, entries) of a chunk of an array of `per` vectors of length n a replica
    (θ, the optimizer's buffers, eigenvectors, the resume slots): whole vectors of up to
    `cap` replicas a chunk while that stays within VECTOR_CHUNK numbers, else fewer replicas and
    then pieces of a vector, so a 10⁶-parameter run writes, checks and reads its vectors a few
    MB at a time (the spiral's stores keep their layout: 256 whole vectors a chunk).

    >>> vector_chunks(256, 603), vector_chunks(4, 1_000_000), vector_chunks(4, 1_000_000, per=20)
    ((256, 603), (1, 1000000), (1, 52428))
    """
    entries = min(n, max(1, VECTOR_CHUNK // per))
    return min(R, cap, max(1, VECTOR_CHUNK // (per * entries))), entries


def layout(
    cfg: RunConfig,
    num_classes: int,
    num_params: int,
    layers=(),
    iterates: int = NUM_DIRS,
    ckpt_vectors: int | None = None,
    edge: bool = True,
) -> dict[str, tuple]:
    """Every array of a store: name → (dims, shape, chunks, dtype, fill). `create` allocates
    these and `nbytes` sums them, so the size estimate is the store's own. `layers`: the layer
    names of per-layer spectra (`cfg.layer_spectra`); `iterates`: the number of projection
    directions of the iterate signals (0: a store from before they were recorded); `edge`: the
    store holds the replicas' stability thresholds (a store from before the optimizers does not)."""
    R, k, n, C = len(cfg.replicas()), cfg.top_k, num_params, num_classes
    step, hstep, pstep = time_axes(cfg)
    rc, sc = min(R, 256), cfg.chunk_steps
    hc = max(1, len(cfg.hessian_steps(0, cfg.chunk_steps)))  # the same count in every chunk
    kb = k + cfg.eig_oversample if ckpt_vectors is None else ckpt_vectors  # the solver's whole block
    i64, f64 = ("int64", 0), ("float64", np.nan)
    out: dict[str, tuple] = {
        "replica": (["replica"], (R,), (R,), *i64),
        "step": (["step"], step.shape, (max(1, min(len(step), 100000)),), *i64),
        "hstep": (["hstep"], hstep.shape, (max(1, min(len(hstep), 100000)),), *i64),
        "pstep": (["pstep"], pstep.shape, (len(pstep),), *i64),
        "eig": (["eig"], (k,), (k,), *i64),
        "class": (["class"], (C,), (C,), *i64),
        "seed": (["replica"], (R,), (R,), *i64),
        "period": (["replica"], (R,), (R,), *i64),
        "eta": (["replica"], (R,), (R,), *f64),
        "amplitude": (["replica"], (R,), (R,), *f64),
        "loss_name": (["replica"], (R,), (R,), str, ""),
        "width": (["replica"], (R,), (R,), *i64),
    }
    for name in PER_STEP:
        out[name] = (["replica", "step"], (R, cfg.steps), (rc, sc), *f64)
    out["gamma"] = (["replica", "step", "class"], (R, cfg.steps, C), (rc, sc, C), *f64)
    for name in ("eigval", "eigres"):
        out[name] = (["replica", "hstep", "eig"], (R, len(hstep), k), (rc, hc, k), *f64)
    out["eigconv"] = (["replica", "hstep", "eig"], (R, len(hstep), k), (rc, hc, k), "bool", False)
    for q in quantities.active(cfg):  # the optional quantities, as they declare themselves
        sizes = q.sizes(cfg, n, layers)
        for dim, size in sizes.items():
            kind = (str, "") if dim == "layer" else i64
            out[dim] = ([dim], (size,), (max(size, 1),), *kind)
        sizes["class"] = C
        axis, length, chunk = ("step", cfg.steps, sc) if q.at == "step" else ("hstep", len(hstep), hc)
        for a in q.arrays:
            tail = tuple(sizes[d] for d in a.dims)
            out[a.name] = (["replica", axis, *a.dims], (R, length, *tail), (rc, chunk, *(max(x, 1) for x in tail)),
                           a.dtype, a.fill)  # fmt: skip
    er, ep = vector_chunks(R, n, k)
    out["eigvec"] = (["replica", "pstep", "eig", "param"], (R, len(pstep), k, n), (er, 1, k, ep), *f64)
    vr, vp = vector_chunks(R, n)
    out["params"] = (["replica", "pstep", "param"], (R, len(pstep), n), (vr, 1, vp), *f64)
    for b in cfg.optimizer_buffers():
        out[f"opt_{b}"] = (["replica", "pstep", "param"], (R, len(pstep), n), (vr, 1, vp), *f64)
    if edge:  # the optimizer's threshold and hyper-parameters, per replica (schema 3)
        for name in ("edge", *HYPER):
            out[name] = (["replica"], (R,), (R,), *f64)
    m = len(cfg.optimizer_buffers())
    width = 1 + n * (1 + m + kb)
    sr, sw = vector_chunks(R, width, cap=R)
    out["state/ckpt"] = (None, (2, R, width), (1, sr, sw), *f64)
    if cfg.lyapunov:
        K = cfg.lyapunov
        out["lyap"] = (["lyap"], (K,), (K,), *i64)
        out["lyap_stretch"] = (["replica", "step", "lyap"], (R, cfg.steps, K), (rc, sc, K), *f64)
        wins = lyapunov_windows(cfg)
        if cfg.lyapunov_window:
            wc = max(1, min(len(wins), sc // cfg.lyapunov_window))
            out["lwindow"] = (["lwindow"], wins.shape, (max(1, len(wins)),), *i64)
            out["lyap_window"] = (["replica", "lwindow", "lyap"], (R, len(wins), K), (rc, wc, K), *f64)
        tw = 1 + K * tangent_size(cfg, n)
        tr, tc = vector_chunks(R, tw, cap=R)
        out["state/tangent"] = (None, (2, R, tw), (1, tr, tc), *f64)
    if iterates:
        out["proj"] = (["proj"], (iterates,), (iterates,), *i64)
        for name in ITERATE_ARRAYS:
            out[name] = (["replica", "step"], (R, cfg.steps), (rc, sc), *f64)
        out["iter_proj"] = (["replica", "step", "proj"], (R, cfg.steps, iterates), (rc, sc, iterates), *f64)
        out["iter_dirs"] = (["proj", "param"], (iterates, n), (iterates, vector_chunks(1, n, iterates)[1]), *f64)
    return out


def nbytes(cfg: RunConfig, num_classes: int, num_params: int, layers=()) -> int:
    """Uncompressed size of the store `cfg` records (every array, the resume state included)."""
    total = 0
    for _, shape, _, dtype, _ in layout(cfg, num_classes, num_params, layers).values():
        total += int(np.prod(shape)) * (8 if dtype is str else np.dtype(dtype).itemsize)
    return total


class RunStore:
    """One recording's store: its path, its Zarr group and its config, opened once.

    Recorders create it and write through it; the analysis and replay open it read-only.
    """

    def __init__(self, path, group: zarr.Group):
        self.path = Path(path)
        self.group = group
        self._writers: dict[str, zarr.Array] = {}
        try:
            self.config = RunConfig.from_json(str(group.attrs["config"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise LandscapeError(f"{path} is damaged: its 'config' attribute cannot be read ({exc})") from None

    # --- opening ----------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path,
        cfg: RunConfig,
        num_classes: int,
        num_params: int,
        data_source: str,
        data_digest: str = "",
        param_map=(),
        layers=(),
        *,
        iter_dirs: np.ndarray,
    ) -> RunStore:
        """Allocate a new store for cfg (the caller has checked `path` with prepare_out);
        `iter_dirs` (K, n): the projection directions of the iterate signals, drawn by the recorder.

        A store that cannot be created whole (disk full, permissions) is removed again: it
        holds no data yet, and a half-made store could not be resumed."""
        try:
            return cls._create(
                path, cfg, num_classes, num_params, data_source, data_digest, param_map, layers, iter_dirs
            )
        except OSError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise LandscapeError(f"cannot create {path}: {exc.strerror or exc}") from None

    @classmethod
    @_every_chunk
    def _create(
        cls,
        path,
        cfg: RunConfig,
        num_classes: int,
        num_params: int,
        data_source: str,
        data_digest: str,
        param_map,
        layers,
        iter_dirs: np.ndarray,
    ) -> RunStore:
        reps = cfg.replicas()
        R = len(reps)
        g = zarr.open_group(str(path), mode="w-", zarr_format=3)
        g.attrs.update(
            {
                "config": cfg.to_json(),
                "versions": _versions(),
                "git_revision": _git_revision(),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "status": "interrupted",  # until a recorder runs it: a store that resumes from step 0
                "steps_done": 0,
                "num_params": num_params,
                "num_classes": num_classes,
                "data": data_source,
                **schemas.attributes(len(iter_dirs), cfg.top_k + cfg.eig_oversample, data_digest, param_map, layers),
                # how the density, trace and bottom pairs are computed (auto resolved for this network)
                "density_method": "dense" if cfg.dense_spectrum(num_params) else "slq",
                "description": "landscape recording; open with xarray.open_zarr or landscape.store.run.open_dataset",
            }
        )
        step, hstep, pstep = time_axes(cfg)
        values = {
            "replica": np.arange(R),
            "step": step,
            "hstep": hstep,
            "pstep": pstep,
            "eig": np.arange(cfg.top_k),
            "class": np.arange(num_classes),
            "seed": np.array([r.seed for r in reps]),
            "period": np.array([r.period for r in reps]),
            "eta": np.array([r.eta for r in reps]),
            "amplitude": np.array([r.amplitude for r in reps]),
            "loss_name": np.array([cfg.loss] * R),
            "width": np.full(R, cfg.width),
            "edge": cfg.edges(),
            **{h: np.array([getattr(r, h) for r in reps]) for h in HYPER},
            "proj": np.arange(len(iter_dirs)),
            "lyap": np.arange(cfg.lyapunov),
            "lwindow": lyapunov_windows(cfg),
            "iter_dirs": np.asarray(iter_dirs, dtype=np.float64),
        }
        for q in quantities.active(cfg):
            values.update(q.coords(cfg, num_params, layers))
        for name, (dims, shape, chunks, dtype, fill) in layout(
            cfg, num_classes, num_params, layers, len(iter_dirs)
        ).items():
            attrs: dict[str, JSON] = {}
            described = long_name(name)
            if described:
                attrs = {"long_name": described, "coordinates": " ".join(REPLICA_COORDS)}
            kw = {} if dtype is str else {"fill_value": fill, "compressors": COMPRESSORS}
            parent, _, leaf = name.rpartition("/")
            a = (g.require_group(parent) if parent else g).create_array(
                leaf,
                shape=shape,
                chunks=chunks,
                dtype=dtype,
                attributes=attrs,
                **({"dimension_names": dims} if dims else {}),
                **kw,
            )
            if name in values:
                a[...] = values[name]
        consolidate(path)
        return cls(path, _writer_root(path))

    @classmethod
    def open(cls, path, mode: Literal["r", "r+"] = "r") -> RunStore:
        """Open a landscape store (checked on its own metadata, never via possibly stale
        consolidated metadata; a writer then holds them refreshed, see `_writer_root`)."""
        p = Path(path)
        if not p.exists():
            raise LandscapeError(f"{path} does not exist")
        if not is_store(p):
            if (p / "zarr.json").is_file():
                try:
                    meta = json.loads((p / "zarr.json").read_text())
                except (OSError, ValueError):
                    meta = None
                if not isinstance(meta, dict) or not isinstance(meta.get("attributes", {}), dict):
                    raise LandscapeError(f"{path} is damaged: its zarr.json is not a Zarr group's metadata")
            raise LandscapeError(f"{path} is not a landscape store (no landscape zarr.json)")
        try:
            g = zarr.open_group(str(p), mode=mode, use_consolidated=False)
        except Exception as exc:  # zarr raises several types for broken metadata
            raise LandscapeError(f"cannot open store {path}: {str(exc).splitlines()[0]}") from None
        store = cls(p, g)
        store.verify_attributes()
        store.verify_metadata()
        store.verify_coordinates()
        if mode == "r+":
            consolidate(p)
            store = cls(p, _writer_root(p))
        return store

    def verify_attributes(self):
        """The root attributes a reader relies on have their types and lengths: an edited or
        damaged zarr.json is one line here, not a wrong result or a traceback downstream."""
        a, R, steps = self.attrs, len(self.config.replicas()), self.config.steps

        def bad(what):
            raise LandscapeError(f"{self.path} is damaged: {what}")

        _ = self.schema  # the version, what an older one means, the parameter map (raises where unreadable)
        if a.get("status", "interrupted") not in STATUSES:
            bad(f"status = {a.get('status')!r} is none of {', '.join(STATUSES)}")
        for name in ("num_params", "num_classes"):
            n = a.get(name)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                bad(f"attribute {name} = {n!r} is not a positive count")
        for name in ("diverged_at", "stopped_at"):
            v = a.get(name)
            if v is None:
                continue
            if not isinstance(v, list) or len(v) != R:
                bad(f"attribute {name} = {str(v)[:40]} is not a list of one step per replica ({R})")
            # a replica stopped or diverged at the last flush reads `steps` (NaN from there: nothing recorded)
            if any(isinstance(x, bool) or not isinstance(x, int) or not -1 <= x <= steps for x in v):
                bad(f"attribute {name} holds {str(v)[:40]}: each must be a step of 0..{steps}, or -1")
        pm = self.schema.param_map
        counted = sum(int(np.prod(shape)) for _, shape in pm)
        if pm and counted != a["num_params"]:
            bad(f"param_map counts {counted} parameters, num_params says {a['num_params']}")
        cfg = self.config
        if pm and not cfg.model:  # the built-in MLP: its first layer's bias is as long as the width
            hidden = [shape[0] for name, shape in pm if name.endswith("bias")][:1]
            if hidden and hidden[0] != cfg.width:
                bad(f"its config says width {cfg.width}, its parameters are of width {hidden[0]}")

    def verify_coordinates(self):
        """The per-replica coordinates stored beside the arrays agree with the config's replica
        table (an edited config would otherwise be analysed as another run)."""
        reps = self.config.replicas()
        want = {
            "seed": [r.seed for r in reps],
            "eta": [r.eta for r in reps],
            "amplitude": [r.amplitude for r in reps],
            "period": [r.period for r in reps],
            "loss_name": [self.config.loss] * len(reps),
        }
        if not self.config.model:
            want["width"] = [self.config.width] * len(reps)
        if self.schema.edge:  # the optimizer's hyper-parameters, per replica (schema 3)
            want.update({h: [getattr(r, h) for r in reps] for h in HYPER})
        for name, values in want.items():
            try:
                got = np.asarray(self.group[name][...]).tolist()
            except Exception as exc:  # a damaged coordinate chunk
                raise LandscapeError(
                    f"{self.path} is damaged: coordinate '{name}' cannot be read ({type(exc).__name__})"
                ) from None
            if got != list(values):
                raise LandscapeError(
                    f"{self.path} is damaged: its config and its '{name}' coordinate disagree "
                    f"({_short(values)} against {_short(got)}); was the config edited?"
                )

    def verify_metadata(self):
        """Every array of the layout is there, readable, with its shape; `steps_done` fits.
        Cheap (metadata only); `landscape check` also reads every chunk."""
        done, steps = self.steps_done, self.config.steps
        if not 0 <= done <= steps:
            raise LandscapeError(f"{self.path} is damaged: steps_done = {done} is outside 0..{steps}")
        n, C = self.attrs.get("num_params"), self.attrs.get("num_classes")
        if not isinstance(n, int) or not isinstance(C, int):
            raise LandscapeError(f"{self.path} is damaged: attributes num_params/num_classes are missing")
        sch = self.schema
        for name, (_, shape, *_rest) in layout(
            self.config, C, n, sch.layers, sch.iterates, sch.ckpt_vectors, sch.edge
        ).items():
            try:
                a = self.group[name]
            except Exception as exc:  # KeyError, JSON errors of a truncated zarr.json, …
                reason = "missing" if isinstance(exc, KeyError) else f"unreadable ({type(exc).__name__})"
                raise LandscapeError(f"{self.path} is damaged: array '{name}' is {reason}") from None
            if not isinstance(a, zarr.Array) or a.shape != tuple(shape):
                raise LandscapeError(
                    f"{self.path} is damaged: array '{name}' has shape "
                    f"{getattr(a, 'shape', None)}, expected {tuple(shape)}"
                )

    # --- reading ----------------------------------------------------------------------
    @property
    def attrs(self):
        return self.group.attrs

    @functools.cached_property
    def schema(self) -> schemas.Schema:
        """The store's facts, read through the migration of the version it carries."""
        attrs = dict(self.group.attrs)
        width = None
        if attrs.get("landscape_schema") == 1:  # version 1 says its resume slots' width only in the array
            try:
                width = int(self.group["state/ckpt"].shape[2])  # type: ignore[union-attr]
            except Exception:  # missing or unreadable: verify_metadata names it
                width = None
        return schemas.read(attrs, width, self.config.top_k, where=str(self.path))

    @property
    def layers(self) -> list[str]:
        """Names of the layers of the per-layer spectra (empty without them)."""
        return list(self.schema.layers)

    @property
    def iterates(self) -> int:
        """Projection directions of the recorded iterate signals (0: a store without them)."""
        return self.schema.iterates

    @property
    def steps_done(self) -> int:
        v = self.group.attrs.get("steps_done", 0)
        if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
            raise LandscapeError(f"{self.path} is damaged: steps_done = {v!r} is not a step count")
        return int(v)

    @property
    def status(self) -> str:
        return str(self.group.attrs.get("status", "unknown"))

    def __getitem__(self, name: str) -> zarr.Array:
        a = self.group[name]
        if not isinstance(a, zarr.Array):
            raise LandscapeError(f"{self.path}: '{name}' is not an array")
        return a

    def read(self, name: str, selection=(), orthogonal: bool = False) -> np.ndarray:
        """`self[name][selection]` as NumPy (`.oindex` with `orthogonal`); a chunk that fails to
        decode (checksum, truncation) is one line naming the store and the array, not a codec's
        traceback."""
        a = self[name]
        try:
            return np.asarray(a.oindex[selection] if orthogonal else a[selection])
        except Exception as exc:
            raise LandscapeError(
                f"{self.path} is damaged: array '{name}' cannot be read ({type(exc).__name__}: "
                f"{(str(exc).splitlines() or [''])[0][:60]}); see: landscape check {shlex.quote(str(self.path))}"
            ) from None

    def dataset(self, complete_only: bool = True):
        """The store as an xarray.Dataset (lazy), trimmed to the recorded steps.

        complete_only: cut `step`, `hstep` and `pstep` at `steps_done`, so a store still
        being recorded, or one that crashed, shows only what was flushed.
        """
        import xarray as xr

        ds = xr.open_zarr(str(self.path), consolidated=False)
        if complete_only:
            done, cfg = self.steps_done, self.config
            ds = ds.isel(
                step=slice(0, done),
                hstep=slice(0, len(cfg.hessian_steps(0, done))),
                pstep=slice(0, -(-done // cfg.save_params_every)),
            )
            if "lwindow" in ds.dims:
                ds = ds.isel(lwindow=slice(0, done // cfg.lyapunov_window))
        return ds

    def read_ckpt(self, step: int, n: int):
        """θ (R, n), warm-start vectors (R, j, n), j ≥ top_k, or None, and the optimizer's state
        {buffer: (R, n)} at `step`, from the state slots."""
        names = self.config.optimizer_buffers()
        for s in range(2):
            row = self._slot(s)
            if row is not None and row[0, 0] == step:
                theta = row[:, 1 : 1 + n]
                state = {b: row[:, 1 + n * (1 + i) : 1 + n * (2 + i)] for i, b in enumerate(names)}
                ev = row[:, 1 + n * (1 + len(names)) :].reshape(row.shape[0], -1, n)
                # a diverged replica (θ NaN) has no warm start and needs none; any other gap (a
                # store from before the guard vectors) and the solver starts cold
                gap = np.isnan(ev).any(axis=(1, 2)) & np.isfinite(theta).all(axis=1)
                return theta, (None if gap.any() or np.isnan(ev).all() else ev), state
        raise LandscapeError(f"store has no resume state for step {step}; it cannot be resumed")

    def saved_state(self, p: int, replicas=None) -> dict[str, np.ndarray] | None:
        """The optimizer's buffers {name: (R, n)} saved beside θ at step p (a multiple of
        save_params_every), of the replicas `replicas` (indices; default all); None for gd."""
        names = self.config.optimizer_buffers()
        if not names:
            return None
        rows = (
            slice(None) if replicas is None else np.asarray(replicas),
            p // self.config.save_params_every,
            slice(None),
        )
        return {b: self.read(f"opt_{b}", rows, orthogonal=replicas is not None) for b in names}

    def _slot(self, s: int, name: str = "state/ckpt") -> np.ndarray | None:
        """Resume slot s of `name` (the θ slots, or the tangent vectors' beside them), or None
        where it cannot be read (damaged: `landscape check` names it)."""
        try:
            return np.asarray(self[name][s])
        except LandscapeError:
            raise
        except Exception:
            return None

    # --- writing ----------------------------------------------------------------------
    def _writable(self, name: str) -> zarr.Array:
        """The array `name` as the recorder writes it, opened once (opening reads its metadata:
        ≈ 0.7 ms, a dozen times a flush; the layout is fixed at creation). The handle itself writes
        every chunk (the rule of `_every_chunk`, which covers the arrays `_create` fills), whatever
        config was current when it was opened; every later write goes through it."""
        a = self._writers.get(name)
        if a is None:
            a = self._writers[name] = self[name].with_config({"write_empty_chunks": True})
        return a

    def set_attrs(self, **kw):
        """One atomic write of the root's zarr.json: the writer's root holds the consolidated
        metadata (`_writer_root`) and zarr writes them back beside the new attributes."""
        self.group.attrs.update(kw)

    def write_block(self, a: int, b: int, block: dict):
        """Write steps [a, b): per-step arrays, spectra and saved parameters (chunk-aligned)."""
        w, cfg = self._writable, self.config
        for name in (*PER_STEP, *quantities.arrays(cfg, "step")):
            w(name)[:, a:b] = block[name]
        if "iter_proj" in block:
            for name in ITERATE_ARRAYS:
                w(name)[:, a:b] = block[name]
            w("iter_proj")[:, a:b, :] = block["iter_proj"]
        w("gamma")[:, a:b, :] = block["gamma"]
        if cfg.lyapunov:
            w("lyap_stretch")[:, a:b, :] = block["lyap_stretch"]
            W = cfg.lyapunov_window
            if W and b // W > a // W:  # the windows that ended in [a, b)
                w("lyap_window")[:, a // W : b // W, :] = block["lyap_window"]
        pe = cfg.save_params_every
        ha, hb = len(cfg.hessian_steps(0, a)), len(cfg.hessian_steps(0, b))
        if hb > ha:
            for name in (*TOPK_ARRAYS, *quantities.arrays(cfg, "hstep")):
                if name in block:
                    w(name)[:, ha:hb] = block[name]
        pa, pb = -(-a // pe), -(-b // pe)
        if pb > pa:
            w("params")[:, pa:pb, :] = block["params"]
            for name in cfg.optimizer_buffers():
                w(f"opt_{name}")[:, pa:pb, :] = block[f"opt_{name}"]
            w("eigvec")[:, pa:pb, :, :] = block["eigvec"]

    def write_ckpt(
        self,
        step: int,
        theta: np.ndarray,
        eigvecs: np.ndarray | None,
        state: dict | None = None,
        tangent: np.ndarray | None = None,
    ):
        """Store θ at `step` (the optimizer's state, the solver's warm start and the Lyapunov
        tangent vectors (R, K, N)) in the slot not holding the last one."""
        R, n = theta.shape
        names = self.config.optimizer_buffers()
        if names and (state is None or set(state) != set(names)):
            raise LandscapeError(f"the resume state of a {self.config.optimizer} run needs its buffers {names}")
        ck = self._writable("state/ckpt")
        row = np.full((R, ck.shape[2]), np.nan)
        row[:, 0] = step
        row[:, 1 : 1 + n] = theta
        for i, b in enumerate(names):
            row[:, 1 + n * (1 + i) : 1 + n * (2 + i)] = state[b]  # type: ignore[index]
        if eigvecs is not None:  # stores from before the guard vectors hold only the top-k
            first = 1 + n * (1 + len(names))
            j = (row.shape[1] - first) // n
            row[:, first:] = eigvecs[:, :j].reshape(R, -1)
        # never overwrite the slot holding steps_done: a crash now must leave it readable (a
        # damaged slot holds nothing and is written over)
        first = self._slot(0)
        slot = 1 if first is not None and first[0, 0] == self.steps_done else 0
        if self.config.lyapunov:  # first: the slot's step (in state/ckpt) comes last
            tg = self._writable("state/tangent")
            trow = np.full((R, tg.shape[2]), np.nan)
            trow[:, 0] = step
            if tangent is not None:
                trow[:, 1:] = tangent.reshape(R, -1)
            tg[slot] = trow
        ck[slot] = row

    def read_tangent(self, step: int) -> np.ndarray | None:
        """The Lyapunov tangent vectors (R, K, N) saved with the resume state of `step`; None
        where the slot holds none (a rewound store: they start again from random directions)."""
        K = self.config.lyapunov
        for s in range(2):
            row = self._slot(s, "state/tangent")
            if row is not None and row[0, 0] == step and not np.isnan(row[:, 1:]).all():
                return row[:, 1:].reshape(row.shape[0], K, -1)
        return None


def _short(values) -> str:
    v = sorted(set(values), key=str)
    return ", ".join(map(str, v[:3])) + (", …" if len(v) > 3 else "")


def open_dataset(path, complete_only: bool = True):
    """The store at `path` as an xarray.Dataset, trimmed to the flushed steps (see RunStore.dataset)."""
    return RunStore.open(path).dataset(complete_only)
