"""The `landscape` command (click): record runs and inspect stores.

Every user error is one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import functools
import sys
import time
from datetime import datetime
from pathlib import Path

import click

from . import LandscapeError
from .config import RunConfig
from .losses import LOSSES


def _split(values, conv, name):
    out = []
    for v in values:
        for part in str(v).split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(conv(part))
            except ValueError:
                raise LandscapeError(f"--{name}: '{part}' is not a valid number") from None
    return tuple(out)


def _seeds(text: str) -> tuple:
    """'5' → seeds 0..4; '3,7,9' → those; '10-19' → that range (inclusive)."""
    text = text.strip()
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        if "-" in text[1:]:
            a, b = text.split("-", 1)
            return tuple(range(int(a), int(b) + 1))
        n = int(text)
    except ValueError:
        raise LandscapeError(f"--seeds: '{text}' is not a count, a list '1,2,3' or a range '0-9'") from None
    if n < 1:
        raise LandscapeError(f"--seeds: need at least one seed, got {n}")
    return tuple(range(n))


def user_errors(fn):
    """Turn LandscapeError (and unreadable paths) into one line and exit 2."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except LandscapeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted; resume with: landscape record --resume <store>", err=True)
            sys.exit(130)
    return wrapper


@click.group()
@click.version_option(package_name="landscape")
def main():
    """Record and analyse training under dynamical loss functions."""


class _Bar:
    """A click progress bar that shows steps/s; drawn from the first flush on, so an
    error raised before any step is still the only line printed."""

    def __init__(self, total: int, start: int = 0):
        self.total, self.start, self.bar = total, start, None
        self.t0, self.done = time.perf_counter(), 0

    def __call__(self, n):
        if self.bar is None:
            self.bar = click.progressbar(length=self.total, label="recording", file=sys.stderr, show_pos=True)
            self.bar.__enter__()
            self.bar.update(self.start)
        self.done += n
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.label = f"recording {rate:,.0f} steps/s"
        self.bar.update(n)

    def close(self):
        if self.bar is None:
            return None
        self.bar.__exit__(None, None, None)
        return self.done / max(time.perf_counter() - self.t0, 1e-9)


@main.command()
@click.option("--loss", default="dce", show_default=True, help=f"one of {', '.join(LOSSES)}")
@click.option("--eta", multiple=True, help="learning rate(s) η; several (comma-separated or repeated) batch together [default 1.0]")
@click.option("--amplitude", "-A", multiple=True, help="amplitude(s) A ≥ 1 of Γ [default 70]")
@click.option("--period", "-T", multiple=True, help="period(s) T ≥ 2 of Γ, in steps [default 5000]")
@click.option("--seeds", default="1", show_default=True, help="number of seeds (0..N-1), a list '3,7' or a range '0-9'")
@click.option("--width", default=100, show_default=True, type=int)
@click.option("--depth", default=1, show_default=True, type=int, help="hidden layers")
@click.option("--activation", default="relu", show_default=True)
@click.option("--steps", default=10000, show_default=True, type=int)
@click.option("--hessian-every", default=50, show_default=True, type=int)
@click.option("--hessian-pairs/--no-hessian-pairs", default=True, show_default=True,
              help="also the spectrum one step later: both branches of a period-2 bounce")
@click.option("--top-k", default=2, show_default=True, type=int)
@click.option("--eig-tol", default=1e-3, show_default=True, type=float, help="relative residual tolerance of the eigensolver")
@click.option("--eig-max-iter", default=100, show_default=True, type=int)
@click.option("--eig-oversample", default=1, show_default=True, type=int,
              help="guard vectors beyond top-k in the eigensolver's block")
@click.option("--save-params-every", default=1000, show_default=True, type=int)
@click.option("--chunk-steps", default=1000, show_default=True, type=int, help="steps per flush (and per Zarr chunk)")
@click.option("--gamma-shape", default="triangle", show_default=True)
@click.option("--static-last", is_flag=True, help="A = 1 for the last oscillation (paper, Fig. 3)")
@click.option("--device", default="cpu", show_default=True)
@click.option("--dtype", default="float64", show_default=True)
@click.option("--data", default=None, help=".npz/.h5 file with X, y (and optional X_val, y_val); default the spiral")
@click.option("--n-per-class", default=100, show_default=True, type=int, help="spiral points per class")
@click.option("--data-seed", default=0, show_default=True, type=int)
@click.option("--val-seed", default=1, show_default=True, type=int)
@click.option("--until", default="end", show_default=True, help="end, or first-instability: stop once every replica has shown its first instability")
@click.option("--until-margin", default=200, show_default=True, type=int, help="steps kept after the last first instability")
@click.option("--out", "-o", default=None, help="store path [default ./<loss>_eta<η>_<time>.zarr]")
@click.option("--overwrite", is_flag=True, help="replace an existing store at --out")
@click.option("--resume", "resume_path", default=None, help="continue an interrupted store (other settings come from it)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
@click.pass_context
@user_errors
def record(ctx, loss, eta, amplitude, period, seeds, width, depth, activation, steps, hessian_every, hessian_pairs, top_k,
           eig_tol, eig_max_iter, eig_oversample, save_params_every, chunk_steps, gamma_shape, static_last, device, dtype, data,
           n_per_class, data_seed, val_seed, until, until_margin, out, overwrite, resume_path, quiet):
    """Record training of one or many replicas into a Zarr store."""
    import recorders as rec

    if resume_path:
        from click.core import ParameterSource

        given = [p for p in ctx.params if p not in ("resume_path", "device", "quiet")
                 and ctx.get_parameter_source(p) == ParameterSource.COMMANDLINE]
        if given:
            raise LandscapeError(f"--resume takes its settings from the store; drop --{given[0].replace('_', '-')}")
        from landscape import store as S

        g = S.open_group(resume_path)
        total, done = S.config_of(g).steps, int(g.attrs.get("steps_done", 0))
        bar = None if quiet else _Bar(total, done)
        dev = device if ctx.get_parameter_source("device") == click.core.ParameterSource.COMMANDLINE else None
        try:
            path = rec.resume(resume_path, device=dev, progress=bar)
        finally:
            rate = bar.close() if bar else None
        click.echo(f"resumed and completed {path}" + (f" ({rate:,.0f} steps/s)" if rate else ""))
        return
    cfg = RunConfig(
        loss=loss, etas=_split(eta or ["1.0"], float, "eta"), amplitudes=_split(amplitude or ["70"], float, "amplitude"),
        periods=_split(period or ["5000"], _int, "period"), seeds=_seeds(seeds), width=width, depth=depth,
        activation=activation, steps=steps, hessian_every=hessian_every, hessian_pairs=hessian_pairs, top_k=top_k, eig_tol=eig_tol,
        eig_max_iter=eig_max_iter, eig_oversample=eig_oversample, save_params_every=save_params_every, chunk_steps=chunk_steps,
        gamma_shape=gamma_shape, static_last=static_last, dtype=dtype, device=device,
        data=str(Path(data).resolve()) if data else None, n_per_class=n_per_class, data_seed=data_seed, val_seed=val_seed,
        until=until, until_margin=until_margin,
    ).validate()
    if out is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = f"{cfg.loss}_eta{'-'.join(f'{e:g}' for e in cfg.etas)}_{stamp}.zarr"
    from . import store as S

    cfg.dataset()  # a bad --data file fails here, before anything is printed or written
    S.check_out(Path(out), overwrite)
    R = len(cfg.replicas())
    click.echo(f"recording {R} replica(s) × {cfg.steps} steps of {cfg.loss} into {out}", err=True)
    bar = None if quiet else _Bar(cfg.steps)
    try:
        path = rec.record(cfg, out, overwrite=overwrite, progress=bar)
    finally:
        rate = bar.close() if bar else None
    click.echo(f"wrote {path}" + (f" ({rate:,.0f} steps/s, {rate * R:,.0f} run-steps/s)" if rate else ""))


def _int(text: str) -> int:
    v = float(text)
    if v != int(v):
        raise ValueError(text)
    return int(v)


@main.command()
@click.argument("store")
@user_errors
def info(store):
    """Print what a store (or a sweep store) holds."""
    from . import store as S
    from . import sweep_store as SS

    if SS.is_sweep(store):
        from .sweep_spec import SweepSpec

        spec_json, names = SS.index(store)
        spec = SweepSpec.from_json(spec_json)
        click.echo(f"sweep      {store}: {spec.num_runs()} runs in {len(names)} batches")
        click.echo(f"grid       loss {','.join(spec.losses)}; width {','.join(map(str, spec.widths))}; "
                   f"η {','.join(f'{e:g}' for e in spec.etas)}; A {','.join(f'{a:g}' for a in spec.amplitudes)}; "
                   f"T {','.join(map(str, spec.periods))}; {len(spec.seeds)} seeds")
        for n in names:
            st = SS.batch_status(store, n)
            extra = ""
            if st != "missing":
                g = S.open_group(f"{store}/{n}")
                extra = f"  {g.attrs.get('steps_done')}/{S.config_of(g).steps} steps, {len(S.config_of(g).replicas())} replicas"
            click.echo(f"  {n}  {st}{extra}")
        return
    g = S.open_group(store)
    cfg = S.config_of(g)
    a = g.attrs
    reps = cfg.replicas()
    click.echo(f"store      {store}")
    click.echo(f"status     {a.get('status')}" + (f" ({a['error']})" if a.get("error") else ""))
    click.echo(f"steps      {a.get('steps_done')} of {cfg.steps} recorded (flush every {cfg.chunk_steps})")
    if a.get("stopped"):
        click.echo(f"stopped    early: {a['stopped']}")
    click.echo(f"loss       {cfg.loss}   Γ {cfg.gamma_shape}" + ("  static last period" if cfg.static_last else ""))
    click.echo(f"network    width {cfg.width} depth {cfg.depth} {cfg.activation}, {a.get('num_params')} parameters, {cfg.dtype} on {cfg.device}")
    click.echo(f"data       {a.get('data')}")
    click.echo(f"spectra    top-{cfg.top_k} every {cfg.hessian_every} steps{' (pairs t, t+1)' if cfg.hessian_pairs else ''}; "
               f"parameters every {cfg.save_params_every} steps")
    click.echo(f"created    {a.get('created')}   code {a.get('git_revision')}")
    click.echo("versions   " + ", ".join(f"{k} {v}" for k, v in a.get("versions", {}).items()))
    click.echo(f"replicas   {len(reps)}")
    click.echo("  #   seed        eta  amplitude  period")
    for i, r in enumerate(reps[:50]):
        click.echo(f"  {i:<3} {r['seed']:<5} {r['eta']:>9g} {r['amplitude']:>10g} {r['period']:>7d}")
    if len(reps) > 50:
        click.echo(f"  … {len(reps) - 50} more")
    click.echo("arrays     " + ", ".join(f"{name}{tuple(arr.shape)}" for name, arr in sorted(g.arrays()) if arr.ndim > 1))


PAPER_FIG4_ETAS = {"dce": (0.5, 0.7, 1.0, 1.4), "dmse1": (0.2, 0.3, 0.4), "dmse2": (0.12, 0.2, 0.3)}


def _fmt_time(sec: float) -> str:
    if sec < 120:
        return f"{sec:.0f} s"
    if sec < 7200:
        return f"{sec / 60:.1f} min"
    if sec < 172800:
        return f"{sec / 3600:.1f} h"
    return f"{sec / 86400:.1f} days"


@main.command()
@click.option("--config", "toml_path", default=None, help="TOML file with the grid and settings (flags override it)")
@click.option("--loss", multiple=True, help="losses (comma-separated or repeated) [default dce]")
@click.option("--eta", multiple=True, help="learning rates [default 1.0]")
@click.option("--amplitude", "-A", multiple=True, help="amplitudes [default 70]")
@click.option("--period", "-T", multiple=True, help="periods [default 5000]")
@click.option("--width", multiple=True, help="hidden widths [default 100]")
@click.option("--seeds", default=None, help="number of seeds (0..N-1), a list '3,7' or a range '0-9' [default 1]")
@click.option("--steps", default=None, type=int, help="steps per run [default 10000]")
@click.option("--steps-per-eta", default=None, type=float, help="each run takes ceil(this / η) steps (the paper: 100000)")
@click.option("--until", default=None, help="end, or first-instability (stop a batch once all its replicas have one)")
@click.option("--until-margin", default=None, type=int)
@click.option("--hessian-every", default=None, type=int)
@click.option("--hessian-pairs/--no-hessian-pairs", default=None, help="spectra at t and t+1 [default: pairs]")
@click.option("--top-k", default=None, type=int)
@click.option("--save-params-every", default=None, type=int)
@click.option("--chunk-steps", default=None, type=int)
@click.option("--static-last", is_flag=True, default=None)
@click.option("--batch-size", default=None, type=int, help="replicas per batch [default: from the device's memory]")
@click.option("--device", default=None)
@click.option("--dtype", default=None)
@click.option("--out", "-o", default=None, help="sweep store [default ./sweep_<time>.zarr]")
@click.option("--dry-run", is_flag=True, help="print the plan, the estimated size and time; write nothing")
@click.option("--workers", default=1, show_default=True, help="local worker processes")
@click.option("--scheduler", default=None, help="address of a Dask scheduler (tcp://host:port): batches run there")
@click.option("--resume", "resume_", is_flag=True, help="continue the sweep at --out, redoing only unfinished batches")
@click.option("--overwrite", is_flag=True)
@click.option("--quiet", "-q", is_flag=True)
@user_errors
def sweep(toml_path, loss, eta, amplitude, period, width, seeds, steps, steps_per_eta, until, until_margin,
          hessian_every, hessian_pairs, top_k, save_params_every, chunk_steps, static_last, batch_size, device, dtype, out,
          dry_run, workers, scheduler, resume_, overwrite, quiet):
    """Run a grid of recordings (loss × width × η × A × T × seeds) packed into batched replicas."""
    from .sweep_spec import SweepSpec, load_toml

    kw = load_toml(toml_path) if toml_path else {}
    grid = {"losses": (loss, str), "etas": (eta, float), "amplitudes": (amplitude, float),
            "periods": (period, _int), "widths": (width, _int)}
    for key, (vals, conv) in grid.items():
        if vals:
            kw[key] = _split(vals, conv, key.rstrip("s")) if conv is not str else tuple(
                v.strip() for x in vals for v in x.split(",") if v.strip())
    if seeds is not None:
        kw["seeds"] = _seeds(seeds)
    for key, val in dict(steps=steps, steps_per_eta=steps_per_eta, until=until, until_margin=until_margin,
                         hessian_every=hessian_every, hessian_pairs=hessian_pairs, top_k=top_k,
                         save_params_every=save_params_every,
                         chunk_steps=chunk_steps, static_last=static_last, batch_size=batch_size, device=device,
                         dtype=dtype).items():
        if val is not None:
            kw[key] = val
    spec = SweepSpec(**kw)
    import recorders.sweep as RS

    batches = RS.plan(spec)
    if dry_run:
        _print_plan(spec, batches)
        return
    if out is None:
        out = f"sweep_{datetime.now().strftime('%Y%m%d-%H%M%S')}.zarr"
    t0 = time.perf_counter()

    def progress(done, total):
        if not quiet:
            click.echo(f"batches {done}/{total} done ({time.perf_counter() - t0:.0f} s)", err=True)

    path = RS.sweep(spec, out, workers=workers, scheduler=scheduler, resume_existing=resume_, overwrite=overwrite,
                    progress=progress)
    click.echo(f"wrote {path} ({spec.num_runs()} runs in {len(batches)} batches); open with "
               f"landscape.sweep_store.open_sweep('{path}')")


def _print_plan(spec, batches):
    import recorders.sweep as RS

    from .sweep_spec import store_bytes

    groups = {}
    for b in batches:
        groups.setdefault((b.loss, b.width, b.steps), []).append(len(b.replicas()))
    click.echo(f"{spec.num_runs()} runs in {len(batches)} batches on {spec.device} ({spec.dtype})")
    click.echo(f"{'loss':>6} {'width':>5} {'steps':>8} {'runs':>6} {'batches (replicas)':>20}")
    for (loss, width, steps), sizes in groups.items():
        click.echo(f"{loss:>6} {width:>5} {steps:>8} {sum(sizes):>6} {len(sizes):>6} ({', '.join(map(str, sizes[:6]))}"
                   + (", …" if len(sizes) > 6 else "") + ")")
    run_steps = sum(b.steps * len(b.replicas()) for b in batches)
    data = batches[0].dataset()
    size = sum(store_bytes(b, b.spec(data).num_params, data.num_classes) for b in batches)
    click.echo(f"run-steps {run_steps:,}; store ≤ {size / 1e9:.2f} GB uncompressed")
    if spec.until == "first-instability":
        click.echo("  (--until first-instability: batches stop early, so steps and size are upper bounds)")
    from dataclasses import replace

    rates, total = {}, 0.0
    for (loss, width, steps), sizes in groups.items():
        b = next(x for x in batches if (x.loss, x.width, x.steps) == (loss, width, steps))
        key = (width, min(64, max(sizes)))
        if key not in rates:
            rates[key] = RS.measure_rate(b, key[1])
        total += steps * sum(sizes) / rates[key]
    click.echo("measured " + ", ".join(f"{r:,.0f} run-steps/s at width {w} (batch {n})" for (w, n), r in rates.items())
               + f" on {spec.device}, spectrum every {spec.hessian_every} → about {_fmt_time(total)} in one process")
    ref = replace(batches[0], width=100, loss="dce")
    rate = RS.measure_rate(ref, 64)
    runs = [(e, 3 * 2 * 30) for etas in PAPER_FIG4_ETAS.values() for e in etas]
    full = sum(n * int(-(-100000 // e)) for e, n in runs)
    early = sum(n * min(6200, int(-(-100000 // e))) for e, n in runs)
    click.echo(f"the paper's full Fig. 4 sweep (DCE, DMSE1, DMSE2 × A 25/50/75 × T 5000/10000 × 30 seeds, "
               f"100000/η steps; η as in docs/results): {full:,} run-steps at {rate:,.0f} run-steps/s (width 100, "
               f"batch 64) = about {_fmt_time(full / rate)} here; with --until first-instability (first "
               f"instabilities came within 5000 steps in docs/results, so ≈ 6200 steps a run) about "
               f"{_fmt_time(early / rate)}")


@main.command()
@click.argument("figure", type=click.Choice(["fig1", "fig2", "fig3", "fig4"]))
@click.option("--quick", "size", flag_value="quick", help="a reduced version that finishes on a 2-core CPU in minutes")
@click.option("--tiny", "size", flag_value="tiny", help="seconds; checks the pipeline, not the physics")
@click.option("--full", "size", flag_value="full", default=True, help="the spec's parameters (default)")
@click.option("--device", default=None)
@click.option("--workers", default=1, show_default=True)
@click.option("--scheduler", default=None, help="Dask scheduler address for the sweep")
@click.option("--out", default=None, help="output directory [default ./reproduce_<figure>]")
@user_errors
def reproduce(figure, size, device, workers, scheduler, out):
    """Run the sweep a figure of the paper needs, analyse it, write figure, datasets and report.md."""
    from .reproduce import run

    out = out or f"reproduce_{figure}"
    t0 = time.perf_counter()
    report = run(figure, size, out, device=device, workers=workers, scheduler=scheduler,
                 progress=lambda d, n: click.echo(f"batches {d}/{n} ({time.perf_counter() - t0:.0f} s)", err=True))
    click.echo(f"wrote {report} ({time.perf_counter() - t0:.0f} s)")


def _attach_analysis():
    from analysis.commands import analyze, plot

    main.add_command(analyze)
    main.add_command(plot)


_attach_analysis()


if __name__ == "__main__":
    main()
