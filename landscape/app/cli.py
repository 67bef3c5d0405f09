"""The `landscape` command (click): record, sweep, inspect and reproduce; `analyze` and `plot`
come from `landscape.app.analyze` (a module per kind of thing they read).

Every user error is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
import warnings
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import click

from landscape import LandscapeError
from landscape.config.knobs import knobs
from landscape.config.run import RunConfig
from landscape.config.sweep import SweepSpec, load_toml, sweep_knobs

from .analyze import analyze, plot
from .options import exit_status, given, knob_options, user_errors
from .paper import FIGURES
from .paper import fig4 as paper_fig4
from .progress import StepBar, fmt_time

RUN_KNOBS = knobs(RunConfig)
SWEEP_KNOBS = sweep_knobs()


class OneLineErrors(click.Group):
    """The command group whose usage errors (an unknown option, a value out of its range, a
    missing argument) are one line and exit status 2, like every other user error, instead of
    click's usage block."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: its help, as click prints it
            click.echo(exc.ctx.get_help() if exc.ctx is not None else str(exc))
            sys.exit(0)
        except click.UsageError as exc:
            cmd = exc.ctx.command_path if exc.ctx is not None else "landscape"
            click.echo(f"error: {exc.format_message()} (see: {cmd} --help)", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)
        except ModuleNotFoundError as exc:  # a package an extra brings, reached without the extra
            click.echo(
                f"error: this command needs the Python package {exc.name!r}, which is not installed "
                f"here: pip install {exc.name} (or the extra that names it in the README)",
                err=True,
            )
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=OneLineErrors)
@click.version_option(package_name="landscape")
def main():
    """Record and analyse training under dynamical loss functions."""
    # zarr warns that consolidated metadata is not in the v3 spec each time a store is
    # consolidated; the store module silences it locally, but a signal can cut that short
    warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)


main.add_command(analyze)
main.add_command(plot)


def short_help(text: str, limit: int = 54) -> str:
    """A command's line in its group's listing: its help's first sentence (an abbreviation such
    as "Fig." does not end one), cut at a word within `limit` characters."""
    first = " ".join(text.split("\n\n")[0].split())
    end = next(
        (i + 1 for i in range(len(first)) if first[i] == "." and first[i + 1 : i + 2] in ("", " ")
         and not first[max(0, i - 3) : i].endswith(("Fig", "e.g", "i.e", "vs", "s.e"))),
        len(first),
    )  # fmt: skip
    first = first[:end].rstrip(".")
    if len(first) <= limit:
        return first
    return first[: first.rfind(" ", 0, limit - 1)].rstrip(",;:") + " …"


@main.command()
@knob_options(RUN_KNOBS)
@click.option("--out", "-o", default=None, help="store path [default ./<loss>_eta<η>_<time>.zarr]")
@click.option("--overwrite", is_flag=True, help="replace an existing store at --out")
@click.option("--resume", "resume_path", default=None, help="continue an interrupted store (settings come from it)")
@click.option(
    "--rewind", is_flag=True, help="with --resume on a damaged store: record again from its last intact flush"
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.option(
    "--break-lock",
    is_flag=True,
    help="take over the store's writer lock left by a process on another machine (or one that is gone)",
)
@user_errors()  # Ctrl-C: handled inside, where the store path is known
def record(out, overwrite, resume_path, rewind, quiet, break_lock, **knob_values):
    """Record training of one or many replicas into a Zarr store."""
    from landscape import recorders
    from landscape.store import lock
    from landscape.store.run import RunStore, check_out

    settings = given(RUN_KNOBS, knob_values)
    if break_lock:
        if not (resume_path or (out and overwrite)):
            raise LandscapeError("--break-lock goes with --resume STORE or --out STORE --overwrite")
        _break(resume_path or out)
    if resume_path:
        extra = sorted(set(settings) - {"device"}) + (["out"] if out else []) + (["overwrite"] if overwrite else [])
        if extra:
            flag = next((k.flag for k in RUN_KNOBS if k.name == extra[0]), extra[0])
            raise LandscapeError(f"--resume takes its settings from the store; drop --{flag}")
        store = RunStore.open(resume_path)
        bar = None if quiet else StepBar(store.config.steps, store.steps_done)
        path, rate = _recording(
            resume_path, bar, recorders.resume, resume_path, device=settings.get("device"), rewind=rewind
        )
        click.echo(f"resumed and completed {path}" + (f" ({rate:,.0f} steps/s)" if rate else ""))
        _say_diverged(path)
        return
    if rewind:
        raise LandscapeError("--rewind goes with --resume STORE")
    cfg = replace(RunConfig(), **settings).validate()
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = f"{cfg.loss}_eta{'-'.join(f'{e:g}' for e in cfg.etas)}_{stamp}.zarr"
    check_out(Path(out), overwrite)
    lock.check_unlocked(out)
    ready = recorders.prepare(cfg)  # bad data, a misfit model or a failed C++ build: before anything is printed
    R = len(cfg.replicas())
    click.echo(f"recording {R} replica(s) × {cfg.steps} steps of {cfg.loss} into {out}", err=True)
    bar = None if quiet else StepBar(cfg.steps)
    path, rate = _recording(out, bar, recorders.record, ready, out, overwrite=overwrite)
    click.echo(f"wrote {path}" + (f" ({rate:,.0f} steps/s, {rate * R:,.0f} run-steps/s)" if rate else ""))
    _say_diverged(path)


def _break(path) -> None:
    from landscape.store import lock

    h = lock.break_lock(path)
    if h is not None:
        click.echo(f"took over the lock of {path} from process {h.get('pid')} on {h.get('host')}", err=True)


def diverged_lines(rs) -> list[str]:
    """One line per diverged replica of a store (`diverged_at` in its attributes)."""
    reps = rs.config.replicas()
    at = rs.attrs.get("diverged_at") or []
    return [
        f"replica {i} (seed {reps[i].seed}, eta {reps[i].eta:g}) diverged at step {s}: its values are NaN from there"
        for i, s in enumerate(at)
        if s >= 0
    ]


def _say_diverged(path) -> None:
    from landscape.store.run import RunStore

    for line in diverged_lines(RunStore.open(path)):
        click.echo(line, err=True)


def _recording(out, bar, fn, *args, **kw):
    """Run a recording with its progress bar; Ctrl-C says how to resume this store."""
    try:
        path = fn(*args, progress=bar, **kw)
    except KeyboardInterrupt as exc:
        click.echo(f"interrupted; resume with: landscape record --resume {shlex.quote(str(out))}", err=True)
        raise SystemExit(exit_status(exc)) from None
    finally:
        rate = bar.close() if bar else None
    return path, rate


@main.command()
@click.argument("store")
@user_errors()
def check(store):
    """Read every chunk of a store (or of each batch of a sweep store) and report damage."""
    from landscape.store import integrity
    from landscape.store import sweep as sweep_store

    paths = [f"{store}/{n}" for n in sweep_store.index(store)[1]] if sweep_store.is_sweep(store) else [store]
    bad = 0
    for p in paths:
        if sweep_store.is_sweep(store) and sweep_store.batch_status(store, Path(p).name) == "missing":
            click.echo(f"{p}: not started")
            continue
        report = integrity.check(p)
        if report.ok:
            click.echo(report.summary())
            continue
        bad += 1
        click.echo(
            f"{p}: DAMAGED, {len(report.damaged)} of {report.chunks_read} chunks "
            f"(first damaged step {report.first_damaged_step}, steps_done {report.steps_done})"
        )
        for d in report.damaged:
            click.echo(f"  {d}")
    if bad:
        raise SystemExit(1)


@main.command()
@click.argument("store")
@user_errors()
def info(store):
    """Print what a store (or a sweep store) holds."""
    from landscape.store import sweep as sweep_store
    from landscape.store.run import RunStore

    if sweep_store.is_sweep(store):
        spec_json, names = sweep_store.index(store)
        spec = SweepSpec.from_json(spec_json)
        b = spec.base
        click.echo(f"sweep      {store}: {spec.num_runs()} runs in {len(names)} batches")
        click.echo(
            f"grid       loss {','.join(spec.losses)}; width {','.join(map(str, spec.widths))}; "
            f"η {','.join(f'{e:g}' for e in b.etas)}; A {','.join(f'{a:g}' for a in b.amplitudes)}; "
            f"T {','.join(map(str, b.periods))}; {len(b.seeds)} seeds"
        )
        click.echo(f"optimizer  {b.optimizer_line()}")
        for n in names:
            st = sweep_store.batch_status(store, n)
            extra = ""
            if st != "missing":
                rs = RunStore.open(f"{store}/{n}")
                extra = f"  {rs.steps_done}/{rs.config.steps} steps, {len(rs.config.replicas())} replicas"
                div = len(diverged_lines(rs))
                extra += f", {div} diverged" if div else ""
                done = sum(v >= 0 for v in rs.attrs.get("stopped_at") or [])
                extra += f", {done} stopped after their first instability" if done else ""
            click.echo(f"  {n}  {st}{extra}")
        return
    rs = RunStore.open(store)
    cfg = rs.config
    a = rs.attrs
    reps = cfg.replicas()
    click.echo(f"store      {store}")
    click.echo(f"status     {a.get('status')}" + (f" ({a['error']})" if a.get("error") else ""))
    click.echo(f"steps      {a.get('steps_done')} of {cfg.steps} recorded (flush every {cfg.chunk_steps})")
    if a.get("stopped"):
        click.echo(f"stopped    early: {a['stopped']}")
    stops = [v for v in a.get("stopped_at") or [] if v >= 0]
    if stops:
        click.echo(
            f"replicas   {len(stops)} of {len(reps)} stopped a margin after their first instability "
            f"(steps {min(stops)}–{max(stops)}; NaN after their stop: stopped_at)"
        )
    for line in diverged_lines(rs):
        click.echo(f"diverged   {line}")
    click.echo(f"loss       {cfg.loss}   Γ {cfg.gamma_shape}" + ("  static last period" if cfg.static_last else ""))
    net = (
        f"model {cfg.model}" + (f" ({', '.join(cfg.model_args)})" if cfg.model_args else "")
        if cfg.model
        else f"width {cfg.width} depth {cfg.depth} {cfg.activation}"
    )
    click.echo(f"network    {net}, {a.get('num_params')} parameters, {cfg.dtype} on {cfg.device}")
    click.echo(f"data       {a.get('data')}")
    click.echo(f"optimizer  {cfg.optimizer_line()}")
    click.echo(
        f"spectra    top-{cfg.top_k} every {cfg.hessian_every} steps{' (pairs t, t+1)' if cfg.hessian_pairs else ''}; "
        f"parameters every {cfg.save_params_every} steps"
    )
    from landscape.curvature import quantities

    extra = [q.describe(cfg) for q in quantities.active(cfg)]
    if extra:
        click.echo(f"also       {', '.join(extra)} at the spectrum steps")
    if any(q.name in ("density", "trace", "bottom") for q in quantities.active(cfg)):
        exact = (a.get("density_method") or "slq") == "dense"
        dense_line = "the density, trace and bottom pairs from the whole spectrum (exact)"
        krylov_line = "density by SLQ, trace by Hutchinson, bottom pairs by block Lanczos"
        click.echo("           " + (dense_line if exact else krylov_line))
    if cfg.lyapunov:
        win = f", and over windows of {cfg.lyapunov_window} steps" if cfg.lyapunov_window else ""
        click.echo(f"dynamics   top-{cfg.lyapunov} Lyapunov exponents' log stretch at every step{win}")
    click.echo(f"created    {a.get('created')}   code {a.get('git_revision')}")
    click.echo("versions   " + ", ".join(f"{k} {v}" for k, v in a.get("versions", {}).items()))
    click.echo(f"replicas   {len(reps)}")
    from landscape.config.run import HYPER_USERS

    used = [h for h, users in HYPER_USERS.items() if cfg.optimizer in users]  # the optimizer's columns
    click.echo("  #   seed        eta  amplitude  period" + "".join(f" {h:>8}" for h in used))
    for i, r in enumerate(reps[:50]):
        hyper = "".join(f" {getattr(r, h):>8g}" for h in used)
        click.echo(f"  {i:<3} {r.seed:<5} {r.eta:>9g} {r.amplitude:>10g} {r.period:>7d}{hyper}")
    if len(reps) > 50:
        click.echo(f"  … {len(reps) - 50} more")
    click.echo(
        "arrays     "
        + ", ".join(f"{name}{tuple(arr.shape)}" for name, arr in sorted(rs.group.arrays()) if arr.ndim > 1)
    )


@main.command()
@click.option("--config", "toml_path", default=None, help="TOML file with the grid and settings (flags override it)")
@knob_options(SWEEP_KNOBS)
@click.option("--out", "-o", default=None, help="sweep store [default ./sweep_<time>.zarr]")
@click.option("--dry-run", is_flag=True, help="print the plan, the estimated size and time; write nothing")
@click.option("--workers", default=1, show_default=True, help="local worker processes")
@click.option("--scheduler", default=None, help="address of a Dask scheduler (tcp://host:port): batches run there")
@click.option(
    "--resume",
    "resume_path",
    default=None,
    help="continue the sweep store at this path, redoing only unfinished batches (settings come from it)",
)
@click.option("--overwrite", is_flag=True, help="replace an existing sweep store at --out")
@click.option("--quiet", "-q", is_flag=True, help="no progress lines")
@click.option(
    "--break-lock",
    is_flag=True,
    help="with --resume: take over the writer locks (the sweep's and its batches') left by a process on "
    "another machine (or one that is gone)",
)
@user_errors()  # Ctrl-C: handled inside, where the store path is known
def sweep(toml_path, out, dry_run, workers, scheduler, resume_path, overwrite, quiet, break_lock, **knob_values):
    """Run a grid of recordings (loss × width × η × A × T × seeds) packed into batched replicas."""
    from landscape.recorders import sweep as sweeps
    from landscape.store import sweep as sweep_store

    settings = given(SWEEP_KNOBS, knob_values)
    if break_lock:
        if not resume_path:
            raise LandscapeError("--break-lock goes with --resume SWEEP")
        _break(resume_path)
        for name in sweep_store.index(resume_path)[1]:
            _break(f"{resume_path.rstrip('/')}/{name}")
    if resume_path:
        extra = sorted(settings) + (["config"] if toml_path else []) + (["out"] if out else [])
        if extra:
            flag = next((k.flag for k in SWEEP_KNOBS if k.name == extra[0]), extra[0])
            raise LandscapeError(f"--resume takes the grid and settings from the store; drop --{flag}")
        spec, out = SweepSpec.from_json(sweep_store.index(resume_path)[0]), resume_path
    else:
        spec = (load_toml(toml_path) if toml_path else SweepSpec()).replace(**settings)
    if spec.steps_per_eta and ("steps" in settings or spec.base.steps != RunConfig.steps) and not resume_path:
        # flags, the TOML file or one of each: one of them would be ignored
        raise LandscapeError("--steps fixes every run's length and --steps-per-eta sets it from η; give one")
    batches = sweeps.check(
        spec, out, workers=workers, scheduler=scheduler, resume_existing=bool(resume_path), overwrite=overwrite
    )  # the same checks for the dry run as for the run
    if dry_run:
        _print_plan(spec, batches)
        return
    if out is None:
        out = f"sweep_{datetime.now().strftime('%Y%m%d-%H%M%S')}.zarr"
    t0 = time.perf_counter()

    started: list[int] = []

    def progress(done, total):
        started.append(done)
        if not quiet:
            click.echo(f"batches {done}/{total} done ({batch_eta(t0, done, total, started[0])})", err=True)

    try:
        path = sweeps.sweep(
            spec,
            out,
            workers=workers,
            scheduler=scheduler,
            resume_existing=bool(resume_path),
            overwrite=overwrite,
            progress=progress,
        )
    except KeyboardInterrupt as exc:
        click.echo(f"interrupted; continue with: landscape sweep --resume {shlex.quote(str(out))}", err=True)
        raise SystemExit(exit_status(exc)) from None
    click.echo(
        f"wrote {path} ({spec.num_runs()} runs in {len(batches)} batches); open with "
        f"landscape.store.sweep.open_sweep('{path}')"
    )


def batch_eta(t0: float, done: int, total: int, started: int = 0) -> str:
    """Elapsed time and, once a batch has finished in this run, the time left."""
    el = time.perf_counter() - t0
    if done <= started or done >= total:
        return f"{fmt_time(el)}"
    return f"{fmt_time(el)}, about {fmt_time(el / (done - started) * (total - done))} left"


def _free_space(out: str, needed: int) -> str:
    """The free space where `out` will be, said beside a size that may not fit in it."""
    where = Path(out).absolute()
    while not where.exists():
        where = where.parent
    free = shutil.disk_usage(where).free
    if free >= needed:
        return ""
    return f" uncompressed, {free / 1e9:,.1f} GB free there: it may not fit (compressed they take less)"


def _print_plan(spec: SweepSpec, batches: list[RunConfig]):
    from landscape.recorders import sweep as sweeps

    groups: dict[tuple, list[int]] = {}
    for b in batches:
        groups.setdefault((b.loss, b.width, b.steps), []).append(len(b.replicas()))
    model = spec.base.model
    net = (
        (lambda w: f"width {w}")
        if not model
        else (lambda w: Path(model.split(":")[0]).name + ":" + model.rsplit(":")[-1])
    )
    click.echo(f"{spec.num_runs()} runs in {len(batches)} batches on {spec.base.device} ({spec.base.dtype})")
    click.echo(
        f"{'loss':>6} {'width' if not model else 'model':>5} {'steps':>8} {'runs':>6} {'batches (replicas)':>20}"
    )
    for (loss, width, steps), sizes in groups.items():
        col = width if not model else "—"
        click.echo(
            f"{loss:>6} {col:>5} {steps:>8} {sum(sizes):>6} {len(sizes):>6} ({', '.join(map(str, sizes[:6]))}"
            + (", …" if len(sizes) > 6 else "")
            + ")"
        )
    c = sweeps.cost(batches)
    click.echo(f"run-steps {c.run_steps:,}; store ≤ {c.store_bytes / 1e9:.2f} GB uncompressed")
    if spec.base.until == "first-instability":
        click.echo("  (--until first-instability: batches stop early, so steps and size are upper bounds)")
    click.echo(
        "measured "
        + ", ".join(f"{r:,.0f} run-steps/s for {loss} {net(w)} (batch {n})" for (loss, w, n), r in c.rates.items())
        + f" on {spec.base.device}, spectrum every {spec.base.hessian_every} → about {fmt_time(c.seconds)} "
        "in one process"
    )
    if model:  # the paper's Fig. 4 is about the built-in MLP on the spiral
        return
    from .reproduce import on_device

    # as `landscape reproduce fig4 --full` would run it on this device (the fused step on a CPU)
    fig4 = sweeps.plan(on_device(next(iter(paper_fig4.specs("full").values())), spec.base.device))[0]
    ((_, _, R), rate), *_ = sweeps.cost([fig4]).rates.items()  # calibrated as any batch is
    full, early = paper_fig4.run_steps(), paper_fig4.run_steps(early=True)
    click.echo(
        f"the paper's full Fig. 4 sweep (DCE, DMSE1, DMSE2 × A 25/50/75 × T 5000/10000 × 30 seeds, "
        f"100000/η steps): {full:,} run-steps at {rate:,.0f} run-steps/s ({fig4.loss}, width {fig4.width}, "
        f"batch {R}, {fig4.step} step) = about "
        f"{fmt_time(full / rate)} here; with --until first-instability (≈ {paper_fig4.EARLY_STEPS} steps a "
        f"run) about {fmt_time(early / rate)}"
    )


@main.command()
@click.argument("figure", type=click.Choice(list(FIGURES)))
@click.option("--full", is_flag=True, help="the spec's parameters (the default size)")
@click.option("--scaled", is_flag=True, help="the paper's grids with the seeds and lengths a 2-core CPU runs in hours")
@click.option("--quick", is_flag=True, help="a reduced version that finishes on a 2-core CPU in minutes")
@click.option("--tiny", is_flag=True, help="seconds; checks the pipeline, not the physics")
@click.option("--device", default=None, help="cpu, cuda or cuda:N [default: cpu]")
@click.option("--workers", default=None, type=click.IntRange(min=1), help="local worker processes [default: 1]")
@click.option("--scheduler", default=None, help="Dask scheduler address for the sweep")
@click.option(
    "--dir",
    "out",
    default=None,
    help="the folder of sweeps, summaries, figure and report [default ./reproduce_<figure>]",
)
@click.option("--yes", "-y", is_flag=True, help="start a full-size run without asking (it can take days)")
@click.option("--redraw", is_flag=True, help="figure and report from the summaries already in --dir, without training")
@user_errors(hint="run the same command again: finished batches are kept")
def reproduce(figure, full, scaled, quick, tiny, device, workers, scheduler, out, yes, redraw):
    """Run the sweep a figure of the paper needs, analyse it, write figure, datasets and report.md."""
    sizes = [n for n, on in (("full", full), ("scaled", scaled), ("quick", quick), ("tiny", tiny)) if on]
    if len(sizes) > 1:
        raise LandscapeError(f"{' and '.join('--' + n for n in sizes)} are sizes of the same run; give one")
    size = sizes[0] if sizes else "full"
    if redraw:
        extra = [f for f, v in (("--device", device), ("--workers", workers), ("--scheduler", scheduler),
                                ("--yes", yes)) if v]  # fmt: skip
        if extra:
            raise LandscapeError(f"--redraw trains nothing; {', '.join(extra)} would do nothing with it")
    if scheduler and workers is not None:
        raise LandscapeError(
            "--workers (local processes) and --scheduler (a Dask cluster) are two places to run; give one"
        )
    workers = workers or 1
    from .reproduce import check_out_dir, estimate, run

    out = out or f"reproduce_{figure}"
    check_out_dir(out)
    if size in ("full", "scaled") and not redraw:
        left = estimate(figure, size, device, out)
        if not left.run_steps:
            text = f"landscape reproduce {figure} --{size}: every sweep is recorded in {out}; summarising"
        else:
            text = (
                f"landscape reproduce {figure} --{size}: {left.run_steps:,} run-steps, about "
                f"{fmt_time(left.seconds / max(workers, 1))} on {device or 'cpu'} (measured here; --quick takes "
                f"minutes); stores up to {left.store_bytes / 1e9:,.1f} GB{_free_space(out, left.store_bytes)}"
            )
        if not yes and left.run_steps:
            if not sys.stdin.isatty():
                raise LandscapeError(text + "; pass --yes to start it")
            click.echo(text, err=True)
            if not click.confirm("start it?", err=True):
                raise SystemExit(1)
        else:
            click.echo(text, err=True)
    t0 = time.perf_counter()
    started: list[int] = []

    def progress(done, total):
        started.append(done)
        click.echo(f"batches {done}/{total} ({batch_eta(t0, done, total, started[0])})", err=True)

    report = run(
        figure, size, out, device=device, workers=workers, scheduler=scheduler, progress=progress, redraw=redraw
    )
    click.echo(f"wrote {report} ({time.perf_counter() - t0:.0f} s)")


def _short_helps(group: click.Group) -> None:
    for cmd in group.commands.values():
        if cmd.help and not cmd.short_help:
            cmd.short_help = short_help(cmd.help)
        if isinstance(cmd, click.Group):
            _short_helps(cmd)


_short_helps(main)


if __name__ == "__main__":
    main()
