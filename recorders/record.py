"""Record a batch of replicas into a run store, chunk by chunk, resumable.

Every `chunk_steps` steps the buffered metrics, spectra and parameters are
written, then the resume state, then `steps_done` (store.py explains why this
order makes a crash lose at most the steps since the last flush).
"""

from __future__ import annotations

import math
import shlex
import signal
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape import LandscapeError
from landscape.config.run import RunConfig
from landscape.curvature import quantities
from landscape.curvature.blocks import layer_blocks
from landscape.curvature.dense import MAX_DENSE
from landscape.curvature.spectrum import top_k
from landscape.dynamics.detector import first_instability
from landscape.dynamics.iterates import Tracker, directions
from landscape.engines import tangent
from landscape.engines.base import ReplicaEngine, StepMetrics, healthy
from landscape.machine.perf import keep_freed_memory, keeps_freed_memory
from landscape.problem.data import Dataset
from landscape.runs import build
from landscape.store import lock
from landscape.store.integrity import check
from landscape.store.run import ITERATE_ARRAYS, PER_STEP, RunStore, prepare_out

Progress = Callable[[int], None]  # called with the number of steps just done


@dataclass(frozen=True)
class Prepared:
    """A recording's validated configuration, its data and its engine: everything that can
    refuse a run before a store exists (memory, a user's model, a fused step's C++ build)."""

    cfg: RunConfig
    data: Dataset
    engine: Any


def prepare(cfg: RunConfig) -> Prepared:
    """Validate cfg, draw or load the data (the memory needed is checked on the spiral's
    dimensions before it is drawn), check that the network fits, and build the engine."""
    cfg.validate()
    if not cfg.data:
        build.check_fits(cfg)
    data = build.dataset(cfg)
    build.check_fits(cfg, data)
    engine = build.engine(cfg, data)
    n = engine.num_params
    if cfg.density_method == "dense" and n > MAX_DENSE and (cfg.density_steps or cfg.trace_samples or cfg.bottom_k):
        raise LandscapeError(f"--density-method dense is for networks of at most {MAX_DENSE} parameters (R × n² "
                             f"numbers), not {n}: use slq or auto")  # fmt: skip
    if cfg.lyapunov > (N := tangent.state_size(engine)):
        raise LandscapeError(f"lyapunov: at most the state's {N} dimensions (θ and the optimizer's buffers), "
                             f"got {cfg.lyapunov}")  # fmt: skip
    return Prepared(cfg, data, engine)


def record(cfg: RunConfig | Prepared, out, *, overwrite: bool = False, progress: Progress | None = None) -> Path:
    """Create the store at `out` and record all of the configuration's steps; `cfg` may be
    already `prepare`d (the CLI prepares before it prints anything)."""
    ready = cfg if isinstance(cfg, Prepared) else prepare(cfg)
    cfg, data, engine = ready.cfg, ready.data, ready.engine
    out = Path(out)
    with lock.held(out):  # one writer: a live recording of `out` is never replaced
        prepare_out(out, overwrite)
        pm = engine.param_map()  # which entries of θ are which parameter
        layers = [name for name, _ in layer_blocks(pm)] if cfg.layer_spectra else []
        theta = engine.init([r.seed for r in cfg.replicas()])
        # made whole, and born 'interrupted' at step 0: a signal meanwhile (Ctrl-C, a sweep
        # worker's SIGTERM) is delivered once it stands and leaves a store that resumes
        with signals_deferred():
            store = RunStore.create(
                out,
                cfg,
                data.num_classes,
                engine.num_params,
                data.source,
                data.digest(),
                param_map=pm,
                layers=layers,
                iter_dirs=directions(engine.num_params),
            )
        _run(store, cfg, engine, theta, 0, None, progress)
    return out


def resume(path, *, device: str | None = None, progress: Progress | None = None, rewind: bool = False) -> Path:
    """Continue an interrupted recording from its last flush.

    A damaged store is refused; with `rewind` it continues instead from the last intact
    flush whose parameters are saved (the steps after it are recorded again)."""
    path = Path(path)
    with lock.held(path):
        if rewind:
            _rewind(path)
        return _resume(path, device, progress)


def rewind_step(report, cfg: RunConfig) -> int:
    """The last step before the first damage where a flush ended and θ was saved: a chunk
    boundary and a multiple of save_params_every, its parameter chunk intact."""
    first = report.first_damaged_step
    if first is None:
        return report.steps_done
    bad_params = {d.steps[0] for d in report.damaged if d.array in ("params", "eigvec")}
    every = math.lcm(cfg.chunk_steps, cfg.save_params_every)
    p = (first // every) * every
    while p > 0 and p in bad_params:
        p -= every
    return p


def _rewind(path: Path):
    report = check(path)
    if report.ok:
        return
    store = RunStore.open(path, mode="r+")
    cfg = store.config
    p = rewind_step(report, cfg)
    theta = np.asarray(store["params"][:, p // cfg.save_params_every, :])
    state = store.saved_state(p)
    with signals_deferred():
        store.write_ckpt(p, theta, None, state)  # the solver starts cold there: spectra agree to its tolerance
        stops = [v if v <= p else -1 for v in store.attrs.get("stopped_at", [])]  # not stopped yet at p
        store.set_attrs(
            steps_done=p, status="interrupted", rewound=f"from step {report.steps_done} to {p}", stopped_at=stops
        )
        store.write_ckpt(p, theta, None, state)  # both slots at p: a damaged one is written over


def _resume(path: Path, device: str | None, progress: Progress | None) -> Path:
    store = RunStore.open(path, mode="r")
    cfg = store.config
    if device is not None:  # the one setting a resume may change: where it runs
        cfg = replace(cfg, device=device)
    cfg.validate()
    if store.status == "complete":
        raise LandscapeError(f"{path} is already complete ({cfg.steps} steps); nothing to resume")
    done = store.steps_done
    data = build.recorded_dataset(cfg, store.schema.data_digest, path)
    build.check_fits(cfg, data)
    engine = build.engine(cfg, data)
    n = engine.num_params
    if n != store.attrs["num_params"]:
        raise LandscapeError(
            f"{path}: data or network differ from the recording ({n} vs {store.attrs['num_params']} parameters)"
        )
    report = check(store)  # resuming on damaged chunks would keep them behind steps_done
    if not report.ok:
        p = rewind_step(report, cfg)
        raise LandscapeError(
            f"{report.summary()}; to record again from step {p} (the last intact flush with saved "
            f"parameters): landscape record --resume {shlex.quote(str(path))} --rewind"
        )
    store = RunStore.open(path, mode="r+")
    state = None
    if done == 0:
        theta, warm = engine.init([r.seed for r in cfg.replicas()]), None
    else:
        th, ev, state = store.read_ckpt(done, n)
        theta = torch.as_tensor(th, device=engine.device).to(engine.dtype)
        warm = None if ev is None else torch.as_tensor(ev, device=engine.device).to(engine.dtype)
    _run(store, cfg, engine, theta, done, warm, progress, state or None)
    return path


@contextmanager
def signals_deferred():
    """Hold SIGINT and SIGTERM until the block ends, then deliver them.

    zarr writes from its own I/O thread: a KeyboardInterrupt raised in the middle of a
    write would leave that thread finishing it later, over whatever the recorder writes next
    (e.g. status 'running' over 'interrupted'). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[tuple[int, object]] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda signum, frame: pending.append((signum, frame)))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for signum, frame in pending[:1]:
            handler = old[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL and signum == signal.SIGINT:
                raise KeyboardInterrupt
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _run(
    store: RunStore,
    cfg: RunConfig,
    engine: ReplicaEngine,
    theta,
    start: int,
    warm,
    progress: Progress | None,
    state=None,
):
    keep_freed_memory(keeps_freed_memory(len(cfg.replicas()), engine.num_params, cfg.eig_max_iter,
                                         torch.finfo(engine.dtype).bits // 8))  # fmt: skip
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        with signals_deferred():  # 'running' only inside the block that marks how it ends
            store.set_attrs(status="running")
        _loop(store, cfg, engine, theta, start, warm, progress, state)
    except OSError as exc:  # disk full, store removed, …: flushed steps are intact (atomic writes)
        done = store.steps_done
        with signals_deferred():
            try:
                store.set_attrs(status="failed", error=f"OSError: {exc.strerror or exc}")
            except OSError:
                pass  # the status cannot be written either; steps_done still tells what is there
        raise LandscapeError(
            f"writing {store.path} failed: {exc.strerror or exc}; the {done} steps flushed before are kept — "
            f"free the space and continue with: landscape record --resume {shlex.quote(str(store.path))}"
        ) from None
    except BaseException as exc:
        with signals_deferred():
            if isinstance(exc, KeyboardInterrupt):  # Ctrl-C or SIGTERM (the command turns it into this)
                store.set_attrs(status="interrupted", error="")
            else:
                reason = f"{type(exc).__name__}: {exc}"
                store.set_attrs(status="failed", error=reason.splitlines()[0])
        raise
    with signals_deferred():  # a signal now finds the recording complete, and says so
        store.set_attrs(status="complete", error="")


def _loop(store: RunStore, cfg: RunConfig, engine: ReplicaEngine, theta, start, warm, progress, state=None):
    """warm: the solver's whole last block (eigenvectors + guards) from the resume state, or None;
    state: the optimizer's buffers at `start` from the resume state (None: zero, at step 0)."""
    seeds = [r.seed for r in cfg.replicas()]
    k = cfg.top_k
    pe = cfg.save_params_every
    early = cfg.until == "first-instability"
    # a replica stopped a margin after its first instability (θ NaN from its stop: it costs nothing more)
    stopped = np.asarray(store.attrs.get("stopped_at", [-1] * len(seeds)), dtype=np.int64)
    theta = _nan_rows(theta, stopped >= 0)
    track = Tracker(theta, start, torch.as_tensor(np.asarray(store["iter_dirs"])).to(theta))
    track.warm(_before(store, engine, start))
    engine.set_optimizer_state(state, start)  # after the replay of `_before`, which moves it
    history = np.empty((0, 0, 3))
    fi, settled = np.full(len(seeds), np.nan), np.zeros(len(seeds), dtype=bool)
    if early:  # the iterate signal so far, for the online instability detector
        history = np.full((len(seeds), cfg.steps, 3), np.nan)
        for j, name in enumerate(ITERATE_ARRAYS):
            history[:, :start, j] = store[name][:, :start]
    buf = _Buffers(cfg, engine, len(seeds))
    lyap = _Tangents(store, cfg, engine, seeds, start) if cfg.lyapunov else None
    spectral = [q for q in quantities.active(cfg) if q.at == "hstep"]
    evaluated = [q for q in quantities.active(cfg) if q.at == "step"]
    diverged = np.asarray(store.attrs.get("diverged_at", [-1] * len(seeds)), dtype=np.int64)
    t = start
    while t < cfg.steps:
        b = min((t // cfg.chunk_steps + 1) * cfg.chunk_steps, cfg.steps)
        G_all = engine.gamma(list(range(t, b)))
        hsteps = set(cfg.hessian_steps(t, b).tolist())
        nh = npar = 0
        for s, e, evaluate in _segments(cfg, t, b, hsteps):
            if s in hsteps:
                res = top_k(
                    engine,
                    theta,
                    s,
                    k,
                    v0=warm,
                    tol=cfg.eig_tol,
                    max_iter=cfg.eig_max_iter,
                    salt=s,
                    seeds=seeds,
                    oversample=cfg.eig_oversample,
                    dense_below=cfg.eig_dense_below,
                    G=G_all[s - t],
                )
                warm, vecs = res.block, res.eigvecs
                buf.eigval[:, nh], buf.eigres[:, nh], buf.eigconv[:, nh] = res.eigvals, res.residuals, res.converged
                for q in spectral:  # the optional quantities, as declared
                    for name, v in q.compute(engine, theta, s, seeds, cfg, G_all[s - t]).items():
                        buf.extra[name][:, nh] = v
                quantities.forget()  # the step's whole spectrum, eigenvectors and all, is written
                nh += 1
            if evaluate:
                for q in evaluated:
                    for name, v in q.compute(engine, theta, s, seeds, cfg, G_all[s - t]).items():
                        buf.per_step[name][:, s - t] = v
            if s % pe == 0:
                buf.params[:, npar], buf.eigvec[:, npar] = theta, vecs
                for name, v in engine.optimizer_state()[0].items():
                    buf.opt[name][:, npar] = v
                npar += 1
            if lyap is None:
                theta, m = engine.steps(theta, s, G_all[s - t : e - t], evaluate, track)
            else:
                theta, m = lyap.steps(theta, s, G_all[s - t : e - t], evaluate, track, buf.stretch[:, s - t : e - t])
            theta = _mark_diverged(theta, m.loss, s, e, diverged, stopped >= 0)
            for name in PER_STEP:
                buf.step[name][:, s - t : e - t] = getattr(m, name).transpose(0, 1)
            if progress is not None:
                progress(e - s)  # every segment: the bar throttles itself
        block = buf.block(b - t, nh, npar)
        block["gamma"] = G_all.transpose(0, 1).detach().cpu().numpy()
        if lyap is not None:
            block.update(lyap.block(buf.stretch[:, : b - t], t, b))
        sig, block["iter_proj"] = track.take(t, b)
        for j, name in enumerate(ITERATE_ARRAYS):
            block[name] = sig[..., j]
        newly = np.zeros(len(seeds), dtype=bool)
        if early:
            history[:, t:b] = sig
            fi = _first_instabilities(history[:, :b], fi, settled, diverged)
            with np.errstate(invalid="ignore"):
                newly = (diverged < 0) & (stopped < 0) & np.isfinite(fi) & (b >= fi + cfg.until_margin)
            stopped[newly] = b
            theta = _nan_rows(theta, newly)  # from step b on (its checkpoint included) NaN
        with signals_deferred():  # a flush is whole or absent, whatever signal arrives
            store.write_block(t, b, block)
            opt = {name: _np64(v) for name, v in engine.optimizer_state()[0].items()}
            store.write_ckpt(b, _np64(theta), None if warm is None else _np64(warm), opt,
                             None if lyap is None else _np64(lyap.V))  # fmt: skip
            store.set_attrs(steps_done=b, diverged_at=[int(v) for v in diverged], stopped_at=[int(v) for v in stopped])
        live = diverged < 0  # a diverged replica is not waited for
        if early and (stopped[live] >= 0).all():  # every other one has stopped: the run is done
            last = int(fi[live].max()) if live.any() else None
            with signals_deferred():
                store.set_attrs(
                    stopped=(
                        f"first instability of every replica (last at step {last}) + {cfg.until_margin} steps"
                        if last is not None
                        else "every replica diverged"
                    )
                    + ("" if live.all() else f"; {int((~live).sum())} diverged"),
                    first_instability=[int(v) if np.isfinite(v) else -1 for v in fi],
                )
            return
        t = b


def _first_instabilities(history: np.ndarray, fi: np.ndarray, settled: np.ndarray, diverged: np.ndarray) -> np.ndarray:
    """The first instability of each replica in the signal so far (R, b, 3), read again only
    for the replicas not yet settled: a first instability, once found, stays where it is as the
    series grows (the detector reads each step from the steps before it and a short stretch
    after; tests/recorders/test_sweep.py checks the stop against the whole series), and a
    diverged replica's signal is NaN from its divergence on. Reading every replica's whole
    series at every flush cost O(R·b) per flush: 16 s at R = 64, b = 300 000, five times the
    steps' own time (docs/performance.md)."""
    todo = ~settled
    if todo.any():
        fi = fi.copy()
        fi[todo] = first_instability(history[todo])[0]
        b = history.shape[1]
        settled |= np.isfinite(fi) | ((diverged >= 0) & (diverged < b))  # in place: the caller's record
    return fi


def _nan_rows(theta: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
    """θ with the given rows NaN: their later values are NaN, their spectra skipped, and the
    fused step does not compute them."""
    if not rows.any():
        return theta
    theta = theta.clone()
    theta[torch.as_tensor(rows, device=theta.device)] = float("nan")
    return theta


def _mark_diverged(
    theta: torch.Tensor, loss: torch.Tensor, s: int, e: int, diverged: np.ndarray, stopped: np.ndarray
) -> torch.Tensor:
    """Mark the replicas that diverged in steps s … e−1 (loss (S, R)): the first step whose F is
    non-finite, else e (θ_e non-finite or beyond DIVERGED_BOUND). Their θ becomes NaN, so
    every later value of theirs is NaN and their spectra cost nothing; the others go on. A
    replica `stopped` (its θ NaN on purpose) is not a divergence."""
    bad_F = ~torch.isfinite(loss)
    new = (~healthy(theta) | bad_F.any(dim=0)).cpu().numpy() & (diverged < 0) & ~stopped
    if not new.any():
        return theta
    theta = theta.clone()
    for r in np.flatnonzero(new):
        first = torch.nonzero(bad_F[:, r]).flatten()
        diverged[r] = s + int(first[0]) if first.numel() else e
        theta[r] = float("nan")
    return theta


def _before(store: RunStore, engine: ReplicaEngine, start: int) -> list[torch.Tensor]:
    """θ_{start−2}, θ_{start−1} (those that exist) by replay from the last saved vector before
    them: what a resumed recording needs to continue the iterate signals bit for bit."""
    if start == 0:
        return []
    pe = store.config.save_params_every
    first = max(0, start - 2)
    p = (first // pe) * pe
    theta = torch.as_tensor(np.asarray(store["params"][:, p // pe, :]), device=engine.device).to(engine.dtype)
    engine.set_optimizer_state(store.saved_state(p), p)
    theta = engine.advance(theta, p, first)
    out = [theta]
    if start - first == 2:
        out.append(engine.advance(theta, first, first + 1))
    return out


class _Tangents:
    """The Lyapunov tangent vectors of a recording (--lyapunov K): pushed through every step's
    tangent map (`landscape.engines.tangent`) before the step, their log stretch written per
    step and, with --lyapunov-window W, as the mean over each window once it is whole. They
    start from random directions at step 0 and continue from the resume state, so a resumed
    recording records the same numbers as one that never stopped."""

    def __init__(self, store: RunStore, cfg: RunConfig, engine: ReplicaEngine, seeds: list[int], start: int):
        self.store, self.engine, self.W = store, engine, cfg.lyapunov_window
        saved = store.read_tangent(start) if start else None
        if saved is None:  # step 0, or a rewound store (its slot holds none): fresh directions there
            self.V = tangent.start(engine, seeds, cfg.lyapunov, start)
        else:
            self.V = torch.as_tensor(saved, device=engine.device).to(engine.dtype)

    def steps(self, theta, s: int, G: torch.Tensor, evaluate: bool, track, out: torch.Tensor):
        """The engine's steps s … s + len(G) − 1 one at a time, each after its tangent map
        (the log stretch into `out` (R, S, K)); the metrics as `engine.steps` gives them."""
        ms = []
        for i in range(G.shape[0]):
            self.V, out[:, i] = tangent.push(self.engine, theta, s + i, G[i], self.V)
            theta, m = self.engine.steps(theta, s + i, G[i : i + 1], evaluate and i == 0, track)
            ms.append(m)
        if len(ms) == 1:
            return theta, ms[0]
        cat = lambda name: torch.cat([getattr(m, name) for m in ms])  # noqa: E731
        return theta, StepMetrics(cat("loss"), cat("loss_static"), cat("train_acc"), cat("val_acc"), G)

    def block(self, stretch: torch.Tensor, t: int, b: int) -> dict:
        """The chunk [t, b)'s arrays: the stretch and the windows that end in it (the part of a
        window before t read back from the store)."""
        out = {"lyap_stretch": _np64(stretch)}
        W = self.W
        if W and b // W > t // W:
            a = (t // W) * W
            R, _, K = stretch.shape
            before = np.asarray(self.store["lyap_stretch"][:, a:t]) if a < t else np.empty((R, 0, K))
            span = np.concatenate([before, out["lyap_stretch"][:, : (b // W) * W - t]], axis=1)
            out["lyap_window"] = span.reshape(span.shape[0], -1, W, span.shape[2]).mean(axis=2)
        return out


def _segments(cfg: RunConfig, t: int, b: int, hsteps: set):
    """[s, e) pieces of the chunk [t, b) with no event inside, and whether s is a validation
    step (--eval-every, and the last step): each piece starts at the chunk's start, a
    spectrum, a saved θ or a validation step, so the engine's `steps` runs each in one call with
    the events before it."""
    val = set(range(-(-t // cfg.eval_every) * cfg.eval_every, b, cfg.eval_every))
    if t <= cfg.steps - 1 < b:
        val.add(cfg.steps - 1)
    cuts = set(hsteps) | val | {t, b}
    cuts.update(range(-(-t // cfg.save_params_every) * cfg.save_params_every, b, cfg.save_params_every))
    edges = sorted(cuts)
    return [(s, e, s in val) for s, e in zip(edges[:-1], edges[1:])]


def _np64(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64)


class _Buffers:
    """One chunk of metrics, spectra and saved parameters, allocated once per recording, so
    memory is bounded by the chunk and per-step tensors do not fragment the heap."""

    def __init__(self, cfg: RunConfig, engine: ReplicaEngine, R: int):
        c, k, n = cfg.chunk_steps, cfg.top_k, engine.num_params
        kw = dict(dtype=engine.dtype, device=engine.device)
        self.step = {name: torch.empty((R, c), **kw) for name in PER_STEP}
        nh = max(1, len(cfg.hessian_steps(0, c)))  # the same count in every full chunk, at most
        self.eigval = torch.empty((R, nh, k), **kw)
        self.eigres = torch.empty((R, nh, k), **kw)
        self.eigconv = torch.empty((R, nh, k), dtype=torch.bool, device=engine.device)
        layers = [name for name, _ in layer_blocks(engine.param_map())]
        self.extra: dict[str, torch.Tensor] = {}  # the optional quantities (landscape.curvature.quantities)
        self.per_step: dict[str, torch.Tensor] = {}  # those recorded at the evaluated steps
        for q in quantities.active(cfg):
            for name, (tail, dtype) in q.shapes(cfg, n, layers, engine.C).items():
                if q.at == "step":
                    self.per_step[name] = torch.full((R, c, *tail), float("nan"), **kw)
                    continue
                kind = dict(dtype=torch.bool, device=engine.device) if dtype == "bool" else kw
                self.extra[name] = torch.empty((R, nh, *tail), **kind)
        npar = -(-c // cfg.save_params_every)
        self.params = torch.empty((R, npar, n), **kw)
        self.opt = {b: torch.empty((R, npar, n), **kw) for b in cfg.optimizer_buffers()}
        self.eigvec = torch.empty((R, npar, k, n), **kw)
        self.stretch = torch.empty((R, c, cfg.lyapunov), **kw)

    def block(self, steps: int, nh: int, npar: int) -> dict:
        """The first `steps` steps, `nh` spectra and `npar` saved vectors, as NumPy arrays."""
        np_ = lambda x: x.detach().cpu().numpy()
        out = {name: np_(v[:, :steps]) for name, v in self.step.items()}
        for name, v in self.per_step.items():  # copied: NaN again between the next chunk's evaluated steps
            out[name] = np_(v[:, :steps]).copy()
            v.fill_(float("nan"))
        if nh:
            out.update(
                eigval=np_(self.eigval[:, :nh]), eigres=np_(self.eigres[:, :nh]), eigconv=np_(self.eigconv[:, :nh])
            )
            out.update({name: np_(v[:, :nh]) for name, v in self.extra.items()})
        if npar:
            out.update(params=np_(self.params[:, :npar]), eigvec=np_(self.eigvec[:, :npar]))
            out.update({f"opt_{b}": np_(v[:, :npar]) for b, v in self.opt.items()})
        return out
