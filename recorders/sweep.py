"""Run a sweep: its batches in this process, in local worker processes, or as tasks on a
Dask cluster; each batch writes its own run store inside the sweep store, so tasks
never share a file and an interrupted sweep resumes batch by batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import active_children, get_context
from pathlib import Path

import torch

from landscape import LandscapeError
from landscape.config.run import Replica, RunConfig
from landscape.config.sweep import SweepSpec
from landscape.curvature.spectrum import top_k
from landscape.dynamics.iterates import Tracker
from landscape.machine.cpus import usable_cpus
from landscape.machine.extras import require
from landscape.machine.perf import keep_freed_memory
from landscape.runs import build
from landscape.store import lock
from landscape.store import sweep as sweep_store
from landscape.store.run import check_out, nbytes

from .record import record, resume


def plan(spec: SweepSpec) -> list[RunConfig]:
    """Validate the spec (nothing is written) and pack it into batches."""
    spec.validate()
    data = build.dataset(spec.base)
    return spec.batches(data.input_dim, data.num_classes, data.X.shape[0])


def work(cfg: RunConfig) -> int:
    """A batch's cost in units of one replica-step of a width-1 network: run-steps times the
    hidden width, which sets the reference network's cost (a `--model` counts as width 1)."""
    return cfg.steps * len(cfg.replicas()) * (cfg.width if cfg.model is None else 1)


def run_batch(sweep_path: str, name: str, cfg_json: str, threads: int | None = None) -> str:
    """Record (or finish) one batch; returns what it did. Safe to call again on a finished batch."""
    global _running
    if threads:
        torch.set_num_threads(threads)
    _running = True  # (the recording chooses how the heap keeps freed memory, by its size)
    try:
        return _run_batch(sweep_path, name, cfg_json)
    finally:
        _running = False
        if _stopping:  # a worker told to stop: its batch is marked interrupted, now it ends
            os._exit(143)


def _run_batch(sweep_path: str, name: str, cfg_json: str) -> str:
    path = Path(sweep_path) / name
    status = sweep_store.batch_status(sweep_path, name)
    if status == "complete":
        return "skipped"
    if status == "missing":
        if path.exists():  # a crash before the store's metadata was written
            shutil.rmtree(path)
        record(RunConfig.from_json(cfg_json), path)
        return "recorded"
    resume(path)
    return "resumed"


_running = False  # in a worker: is a batch being recorded now?
_stopping = False  # in a worker: has it been told to stop?


def _init_worker(threads):
    """A sweep worker: ends with its parent (also a SIGKILLed one), and on SIGTERM stops the
    batch it records as Ctrl-C would (the store is marked interrupted) or, idle, just exits."""
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, _worker_sigterm)
    signal.signal(signal.SIGINT, _worker_sigterm)  # the parent decides; Ctrl-C reaches it too
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: SIGTERM when the parent dies
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(143)


def _worker_sigterm(signum, frame):
    global _stopping
    if _running and not _stopping:
        _stopping = True
        raise KeyboardInterrupt
    if not _running:
        os._exit(128 + signum)


def sweep(
    spec: SweepSpec,
    out,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    resume_existing: bool = False,
    overwrite: bool = False,
    progress=None,
    notify=None,
) -> Path:
    """Run every batch of `spec` into the sweep store `out`. `notify(line)` hears what a run
    on a Dask cluster waits for (default: standard error)."""
    batches = check(
        spec, out, workers=workers, scheduler=scheduler, resume_existing=resume_existing, overwrite=overwrite
    )
    out = Path(out)
    with lock.held(out):
        return _sweep(spec, batches, out, workers, scheduler, resume_existing, overwrite, progress, notify)


def check(
    spec: SweepSpec,
    out,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    resume_existing: bool = False,
    overwrite: bool = False,
) -> list[RunConfig]:
    """Everything a sweep checks before it writes (the grid, the options, `out`), changing
    nothing: the sweep and its `--dry-run` both run it, so a dry run passes only what the run
    accepts. Returns the batches."""
    if workers < 1:
        raise LandscapeError(f"--workers must be >= 1, got {workers}")
    if scheduler and workers != 1:
        raise LandscapeError(
            "--workers (local processes) and --scheduler (a Dask cluster) are two places to run; give one"
        )
    if resume_existing and overwrite:
        raise LandscapeError("--resume continues a sweep and --overwrite replaces it; give one")
    batches = plan(spec)
    out = Path(out) if out is not None else None
    if out is None:
        return batches
    names = [sweep_store.batch_name(i) for i in range(len(batches))]
    if out.exists():
        if resume_existing:
            stored_spec, stored_names = sweep_store.index(out)
            if SweepSpec.from_json(stored_spec) != spec or stored_names != names:
                raise LandscapeError(f"{out} was started with other settings; resume it without changing the grid")
        elif not sweep_store.is_sweep(out):
            raise LandscapeError(f"{out} exists and is not a landscape sweep store; refusing to overwrite it")
        elif not overwrite:
            raise LandscapeError(f"{out} already exists; use --resume to continue it or --overwrite to replace it")
    elif resume_existing:
        raise LandscapeError(f"{out} does not exist; nothing to resume")
    else:
        check_out(out, overwrite=False)
    return batches


def _sweep(spec, batches, out: Path, workers, scheduler, resume_existing, overwrite, progress, notify=None) -> Path:
    names = [sweep_store.batch_name(i) for i in range(len(batches))]
    client = _connect(scheduler) if scheduler else None
    if out.exists() and overwrite and not resume_existing:
        shutil.rmtree(out)
    if not out.exists():
        check_out(out, overwrite=False)
        sweep_store.create(out, spec.to_json(), names)
    pending = [(n, b) for n, b in zip(names, batches) if sweep_store.batch_status(out, n) != "complete"]
    # the largest batches first, so that a pool does not end with one long batch running alone
    # while the other workers wait (one worker runs them in any order in the same time)
    todo = [(n, b.to_json()) for n, b in sorted(pending, key=lambda nb: -work(nb[1]))]
    done = len(batches) - len(todo)
    if progress:
        progress(done, len(batches))
    if client is not None:
        futures = client.map(
            run_batch,
            [str(out)] * len(todo),
            [n for n, _ in todo],
            [c for _, c in todo],
            pure=False,
            key=[f"landscape-{out.name}-{n}-{time.time_ns()}" for n, _ in todo],
        )
        try:
            for f in futures:
                _result_or_say(f, client, scheduler, notify)
                done += 1
                if progress:
                    progress(done, len(batches))
        except BaseException:
            client.cancel(futures)  # queued batches never start; a running one ends at its task
            raise
        finally:
            client.close()
    elif workers > 1:
        threads = max(1, usable_cpus() // workers)  # affinity and cgroup quota, not the machine's cores
        pool = ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads,)
        )
        try:
            for f in [pool.submit(run_batch, str(out), n, c) for n, c in todo]:
                f.result()
                done += 1
                if progress:
                    progress(done, len(batches))
        except BaseException:
            # Ctrl-C, SIGTERM or a failed batch: queued batches are dropped, running ones are
            # stopped (their workers mark their stores interrupted) and the workers end
            pool.shutdown(wait=False, cancel_futures=True)
            for proc in active_children():
                proc.terminate()
            for proc in active_children():
                proc.join(timeout=30)
            raise
        pool.shutdown()
    else:
        for n, c in todo:
            run_batch(str(out), n, c)
            done += 1
            if progress:
                progress(done, len(batches))
    return out


NO_WORKER_WAIT = 10.0  # seconds a batch waits before the sweep says the cluster has no worker


def _result_or_say(future, client, address: str, notify=None) -> None:
    """The batch's result; while it waits on a cluster with no worker (its only one died or
    left), say so every NO_WORKER_WAIT seconds instead of waiting in silence."""
    from distributed import TimeoutError as DaskTimeout

    say = notify or (lambda line: print(line, file=sys.stderr, flush=True))
    while True:
        try:
            future.result(timeout=NO_WORKER_WAIT)
            return
        except (TimeoutError, DaskTimeout):
            try:
                workers = len(client.scheduler_info().get("workers", {}))
            except Exception:  # the scheduler itself gone: the next result() says it
                continue
            if workers == 0:
                say(
                    f"the Dask cluster at {address} has no worker (the last one died or left): the batches "
                    "wait for one; start a worker, or stop (Ctrl-C) and continue later with: landscape sweep --resume"
                )


def _connect(address: str, timeout: float = 10.0):
    """A Dask client, or one line within `timeout` seconds: an address where something else
    listens (an HTTP server) must not hang, an unroutable one must not end in a traceback."""
    Client = require("distributed", "dask", "--scheduler").Client
    result: dict = {}

    def connect():
        try:
            # not the process's default client: a half-made one must not capture later dask
            # computations (xarray's), which would then wait on it for ever
            result["client"] = Client(address, timeout=f"{timeout}s", set_as_default=False)
        except Exception as exc:  # OSError, TimeoutError, ValueError, CommClosedError, …
            result["error"] = exc

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(timeout + 5)
    if "client" in result:
        return result["client"]
    exc = result.get("error")
    why = (
        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if exc
        else f"no answer in {timeout:g} s"
    )
    raise LandscapeError(f"cannot reach the Dask scheduler at {address}: {why}")


@dataclass(frozen=True)
class Cost:
    """What recording some batches takes on this machine, said before it starts."""

    seconds: float  # in one process, from the engine's rates measured here
    run_steps: int
    store_bytes: int  # the stores' uncompressed size: an upper bound on the disk they take
    rates: dict = field(default_factory=dict)  # (loss, width, replicas) → run-steps/s measured

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.seconds + other.seconds,
            self.run_steps + other.run_steps,
            self.store_bytes + other.store_bytes,
            {**self.rates, **other.rates},
        )


def cost(batches: list[RunConfig], rates: dict | None = None) -> Cost:
    """Time, run-steps and store size of `batches`: each batch at the rate of its engine measured
    here for its loss, width and batch size (one calibration per kind, at most 64 replicas; pass
    `rates` to share them between calls). Early-stopping batches count at full length."""
    rates = {} if rates is None else rates
    used: dict = {}
    seconds, run_steps, size = 0.0, 0, 0
    if not batches:
        return Cost(seconds, run_steps, size, used)
    data = build.dataset(batches[0])
    for b in batches:
        R = len(b.replicas())
        key = (b.loss, b.width, min(R, 64))
        if key not in rates:
            rates[key] = measure_rate(b, key[2])
        used[key] = rates[key]
        seconds += b.steps * R / rates[key]
        run_steps += b.steps * R
        size += nbytes(b, data.num_classes, build.num_params(b, data))
    return Cost(seconds, run_steps, size, used)


def measure_rate(cfg: RunConfig, replicas: int, steps: int = 100) -> float:
    """Run-steps per second of the engine on cfg's device at this batch size, as the recorder
    runs it (a short calibration, nothing written): segments of `engine.steps` with validation
    at the first step of each `eval_every` and the iterate signals tracked, plus the spectrum
    (of both steps of a pair with `hessian_pairs`) every `hessian_every` steps."""
    keep_freed_memory()
    c = replace(cfg, replica_table=tuple(Replica(s, 1.0, 50.0, 5000) for s in range(replicas)))
    eng = build.engine(c, build.dataset(c))
    theta = eng.init(range(replicas))
    G = eng.gamma(list(range(steps + 3)))
    track = Tracker(theta, 0)
    theta, _ = eng.steps(theta, 0, G[:3], True, track)  # warm-up: first calls allocate
    res = top_k(eng, theta, 3, cfg.top_k, tol=cfg.eig_tol, oversample=cfg.eig_oversample)
    t0 = time.perf_counter()
    for s in range(3, steps + 3, cfg.eval_every):
        theta, _ = eng.steps(theta, s, G[s : s + cfg.eval_every], True, track)
    float(theta.sum())
    t_step = (time.perf_counter() - t0) / steps
    t0 = time.perf_counter()
    top_k(eng, theta, steps, cfg.top_k, v0=res.block, tol=cfg.eig_tol, oversample=cfg.eig_oversample)
    t_spec = time.perf_counter() - t0
    per_site = 2 if cfg.hessian_pairs else 1
    return replicas / (t_step + per_site * t_spec / cfg.hessian_every)
