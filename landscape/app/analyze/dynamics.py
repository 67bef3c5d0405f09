"""`analyze` commands that read the dynamics: instabilities and the period-doubling cascade
(`bifurcations`), λ at the first instability across runs (`instability`, Fig. 4), the
final accuracies across widths (`generalization`, Fig. 3) and progressive sharpening to the
edge (`sharpening`)."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from landscape import LandscapeError
from landscape.analysis.bifurcations import LAMBDA_SOURCES, VARIABLES

from ..options import detector_options, user_errors
from .common import (
    CONDITION,
    GENERALIZATION_COLUMNS,
    analyze,
    fig_dir,
    fmt,
    instability_columns,
    print_summary,
    save_pair,
    summary_command,
    summary_out,
)


def _load_series(path: str):
    """A 1-D series from .npy or .csv/.txt (one value per line, or one row), one-line errors."""

    p = Path(path)
    if not p.is_file():
        raise LandscapeError(f"{path} does not exist")
    try:
        if p.suffix == ".npy":
            x = np.load(p, allow_pickle=False)
        elif p.suffix in (".csv", ".txt"):
            x = np.loadtxt(p, delimiter="," if p.suffix == ".csv" else None, ndmin=1)
        else:
            raise LandscapeError(f"{path}: a series must be .npy, .csv or .txt")
    except LandscapeError:
        raise
    except Exception as exc:
        raise LandscapeError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    try:
        x = np.squeeze(np.asarray(x, dtype=np.float64))
    except (TypeError, ValueError):
        raise LandscapeError(f"{path}: a series must hold numbers, not {np.asarray(x).dtype}") from None
    if x.ndim != 1:
        raise LandscapeError(f"{path}: a series must be 1-D, got shape {x.shape}")
    return x


@analyze.command()
@click.argument("store", required=False)
@click.option("--series", default=None, help="analyse a bare 1-D series (.npy, .csv or .txt) instead of a store")
@click.option("--period", default=None, type=int, help="with --series: cycle length in steps, >= 2 (onsets per cycle)")
@detector_options
@click.option(
    "--variable",
    type=click.Choice(VARIABLES),
    default="iterates",
    show_default=True,
    help="what to read the dynamics from: θ's period-2 signal (iterates) or a recorded series",
)
@click.option(
    "--lambda",
    "lambda_source",
    type=click.Choice(LAMBDA_SOURCES),
    default="auto",
    show_default=True,
    help="λ at the onsets: replay (exact at t and t+1), recorded (branch-wise), auto",
)
@click.option(
    "--confirm-chaos/--no-confirm-chaos",
    default=True,
    show_default=True,
    help="keep a chaos onset only where the top Lyapunov exponent over its span is positive (gradient descent "
    "stores with saved parameters, by exact replay)",
)
@click.option(
    "--floquet",
    is_flag=True,
    help="beside each period-2^j onset, where the multipliers of the 2^(j-1)-step tangent map cross -1 "
    "(exact replay; a few seconds an onset on the spiral's networks)",
)
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@user_errors()
def bifurcations(store, series, period, variable, lambda_source, confirm_chaos, floquet, out, **settings):
    """Onset of instability and of the period-doubling cascade, per replica and period of Γ."""
    from landscape.analysis.bifurcations import Detector, detect, detect_series
    from landscape.analysis.io import check_target, save_result

    det = Detector(**settings)
    if (store is None) == (series is None):
        raise LandscapeError("give a STORE or --series FILE (one of them)")
    if series is not None:
        res = detect_series(_load_series(series), period, det)
        click.echo(f"{'cycle':>5} {'instab':>7} {'p2':>7} {'p4':>7} {'p8':>7} {'p16':>7} {'chaos':>7}")
        for c in range(res.sizes["cycle"]):
            o = res.onset.values[c]
            if np.isfinite(o[0]):
                click.echo(f"{c:>5} " + " ".join(f"{fmt(v):>7}" for v in o))
        fi = float(res.first_instability)
        click.echo(
            "no instability"
            if not np.isfinite(fi)
            else f"first instability at step {int(fi)}"
            + (" (unstable from the start)" if bool(res.unstable_from_start) else "")
        )
        if out:
            click.echo(f"saved to {save_result(res, out, 'bifurcations', out)}")
        return
    check_target(store, out)  # a read-only store is refused before the detection, not after
    res = detect(store, det, variable, lambda_source, confirm_chaos, floquet)
    gd = res.attrs.get("optimizer", "gd") == "gd"
    edge, ratio = ("2/η", "λ1/(2/η)") if gd else ("edge", "λ1/edge")  # λ of P⁻¹H for rmsprop, adam
    click.echo(
        f"{'rep':>3} {'seed':>4} {'eta':>7} {'A':>5} {'T':>6} {'cycle':>5} {'instab':>7} {'p2':>7} {'p4':>7} "
        f"{'p8':>7} {'p16':>7} {'chaos':>7} {'λ1(t)':>7} {'λ1(t+1)':>7} {'λ1 mean':>7} {'λ2':>7} {edge:>6} "
        f"{ratio:>9}"
    )
    o, l1, l2 = res.onset.values, res.lambda1.values, res.lambda2.values
    la, lb = res.lambda1_t.values, res.lambda1_t1.values
    for r in range(res.sizes["replica"]):
        for k in range(res.sizes["cycle"]):
            if not np.isfinite(o[r, k, 0]):
                continue
            tw = float(res.threshold[r]) if "threshold" in res else float(res.two_over_eta[r])
            click.echo(
                f"{r:>3} {int(res.seed[r]):>4} {float(res.eta[r]):>7g} {float(res.amplitude[r]):>5g} "
                f"{int(res.period[r]):>6} {k:>5} "
                + " ".join(f"{fmt(v):>7}" for v in o[r, k])
                + f" {fmt(la[r, k, 0], 3):>7} {fmt(lb[r, k, 0], 3):>7} {fmt(l1[r, k, 0], 3):>7}"
                f" {fmt(l2[r, k, 0], 3):>7} {tw:>6g} {fmt(l1[r, k, 0] / tw, 3):>9}"
            )
    if floquet:
        lag = res.floquet_lag.values
        for level in ("p2", "p4", "p8", "p16"):
            li = list(res.level.values).index(level)
            have = np.isfinite(o[:, :, li]).sum()
            x = lag[:, :, li][np.isfinite(lag[:, :, li])]
            if have:
                click.echo(
                    f"{level}: multipliers cross -1 within ±400 steps of {x.size} of {have} onsets"
                    + (f"; detector − multipliers: median {np.median(x):+.0f}, "
                       f"range {x.min():+.0f} … {x.max():+.0f} steps" if x.size else "")
                )  # fmt: skip
    none = int((~np.isfinite(res.first_instability.values)).sum())
    if none:
        click.echo(f"{none} replica(s) showed no instability")
    start = int(res.unstable_from_start.values.sum())
    if start:
        click.echo(f"{start} replica(s) unstable from the first steps (no first instability to read λ at)")
    click.echo(f"saved to {save_result(res, store, 'bifurcations', out)}")


@summary_command("fig4.png")
def instability(stores, out, fig):
    """λ1 at the first instability vs η per (loss, η, A, T): mean ± s.e. over replicas, next to 2/η
    (or to each optimizer's own threshold, for runs of other optimizers than gd)."""
    from landscape.analysis.figures import draw_fig4, draw_fig4_optimizers
    from landscape.analysis.first_instability import first_instabilities, summarize

    fig_dir(fig, "--fig")
    summary_out(out)
    runs = first_instabilities(stores)
    summ = summarize(runs)
    print_summary(summ, instability_columns(summ))
    draw = draw_fig4_optimizers if "optimizer" in summ.coords else draw_fig4
    click.echo("figures " + ", ".join(draw(summ, fig)) + save_pair(out, "instability", runs, summ))


@summary_command("fig3.png")
def generalization(stores, out, fig):
    """Validation accuracy vs width (Fig. 3): mean ± s.e. over seeds per loss, at the last step."""
    from landscape.analysis.generalization import draw_fig3, final_accuracies, summarize

    fig_dir(fig, "--fig")
    summary_out(out)
    runs = final_accuracies(stores)
    summ = summarize(runs)
    print_summary(summ, CONDITION[:1] + [("width", 5, "width", "d")] + CONDITION[1:] + GENERALIZATION_COLUMNS)
    click.echo("figures " + ", ".join(draw_fig3(summ, fig)) + save_pair(out, "generalization", runs, summ))


@analyze.command()
@click.argument("store")
@click.option(
    "--variable",
    type=click.Choice(["class_val_acc", "class_train_acc"]),
    default="class_val_acc",
    show_default=True,
    help="the per-class accuracy to read (recorded with --class-accuracy)",
)
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@user_errors()
def forgetting(store, variable, out):
    """Forgetting per replica: the mean over periods of the largest within-period drop of any class's accuracy."""
    from landscape.analysis.forgetting import forgetting as measure
    from landscape.analysis.io import check_target, save_result

    check_target(store, out)
    res = measure(store, variable)
    click.echo(f"{'rep':>3} {'seed':>4} {'eta':>7} {'A':>6} {'T':>6} {'periods':>7} {'forgetting':>10} {'worst':>7}")
    for r in range(res.sizes["replica"]):
        click.echo(
            f"{r:>3} {int(res.seed[r]):>4} {float(res.eta[r]):>7g} {float(res.amplitude[r]):>6g} "
            f"{int(res.period[r]):>6} {int(res.periods[r]):>7} {fmt(res.forgetting.values[r], 3):>10} "
            f"{fmt(res.worst.values[r], 3):>7}"
        )
    click.echo(f"saved to {save_result(res, store, 'forgetting', out)}")


@analyze.command()
@click.argument("store")
@click.option("--k", "k", default=2, type=click.IntRange(min=1), show_default=True, help="exponents per replica")
@click.option("--from-step", "start", default=0, type=click.IntRange(min=0), show_default=True,
              help="the training step to start from")  # fmt: skip
@click.option("--steps", default=None, type=click.IntRange(min=1), help="steps to follow [default: to the end]")
@click.option(
    "--window", default=None, type=click.IntRange(min=1), help="also the exponents over windows of this many steps"
)
@click.option(
    "--replica", "replicas", type=click.IntRange(min=0), multiple=True, help="replica index (repeat) [default: all]"
)
@click.option(
    "--twin-eps",
    type=float,
    multiple=True,
    help="also a twin trajectory started this far away (repeat for several ε): finite-amplitude growth",
)
@click.option(
    "--twin-direction",
    type=click.Choice(["v1", "random"]),
    default="v1",
    show_default=True,
    help="the twins' direction: the top Hessian eigenvector at the start, or a random unit vector",
)
@click.option("--replay", is_flag=True,
              help="compute them by replay even where the store recorded them (--lyapunov K)")  # fmt: skip
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@user_errors()
def lyapunov(store, k, start, steps, window, replicas, twin_eps, twin_direction, replay, out):
    """Top-k Lyapunov exponents of the training map (θ and the optimizer's state; I − ηH per
    step for gd): read from a recording made with --lyapunov K (k ≤ K), else by replay."""
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.lyapunov import lyapunov as exponents
    from landscape.analysis.lyapunov import recorded, twin_separation
    from landscape.runs.opened import Run

    check_target(store, out)
    K = Run.open(store).config.lyapunov
    if K >= k and not replay:
        res = recorded(store, k, start, steps, list(replicas) or None, window)
    else:
        res = exponents(store, k, start, steps, list(replicas) or None, window)
    twins = None
    if twin_eps:
        n = res.sizes["step"]
        twins = twin_separation(store, start, n, twin_eps, twin_direction, list(replicas) or None)
    click.echo(
        f"{'rep':>3} {'seed':>4} {'eta':>7} {'A':>6} {'T':>6} " + " ".join(f"{f'λ{j + 1}':>9}" for j in range(k))
    )
    for i, r in enumerate(res.replica.values):
        click.echo(
            f"{int(r):>3} {int(res.seed[i]):>4} {float(res.eta[i]):>7g} {float(res.amplitude[i]):>6g} "
            f"{int(res.period[i]):>6} " + " ".join(f"{fmt(v, 5):>9}" for v in res.exponent.values[i])
        )
    how = "from the recording's tangent vectors" if res.attrs["method"] == "recorded" else "by replay"
    click.echo(f"exponents per step over steps {start} … {start + res.sizes['step'] - 1}, {how}")
    if twins is not None:
        click.echo(f"twins started ε along {twin_direction}: mean log-growth of the separation per step")
        click.echo(f"{'rep':>3} " + " ".join(f"{f'ε {e:g}':>10}" for e in twins.eps.values))
        for i, r in enumerate(twins.replica.values):
            click.echo(f"{int(r):>3} " + " ".join(f"{fmt(v, 5):>10}" for v in twins.growth.values[i]))
        twins = twins.rename({"step": "twin_step", "separation": "twin_separation", "growth": "twin_growth"})
        res = res.merge(twins[["twin_separation", "twin_growth"]], compat="override")
    click.echo(f"saved to {save_result(res, store, 'lyapunov', out)}")


@analyze.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--reach", type=float, default=0.95, show_default=True,
              help="the sharpness over the threshold (λ1·η/2 for gd) that counts as at the edge")  # fmt: skip
@click.option("--fig", default=None, help="also draw λ1 against the step with 2/η (PNG and PDF)")
@user_errors()
def sharpening(stores, reach, fig):
    """Progressive sharpening to the edge of stability, per replica: λ1 at the start, the step
    where λ1·η/2 first reaches --reach, the steps recorded from there, λ1·η/2 over that phase
    (mean, min, max) and λ1(GGN)/λ1(H) over it where the store has --ggn-k."""
    from landscape.analysis.edge_of_stability import draw_sharpening
    from landscape.analysis.edge_of_stability import sharpening as table
    from landscape.runs.opened import Run

    if not 0 < reach <= 2:
        raise LandscapeError(f"--reach must be in (0, 2], got {reach}")
    if fig:
        fig_dir(fig, "--fig")
    t = table(stores, reach)
    click.echo(f"{'loss':6} {'eta':>8} {'2/eta':>7} {'lambda0':>8} {'reached':>8} {'hover':>6} "
               f"{'mean':>6} {'min':>6} {'max':>6} {'GGN/H':>6}")  # fmt: skip
    for i in range(t.sizes["row"]):
        v = {k: t[k].values[i] for k in t.data_vars}
        at = "never" if v["reached_at"] < 0 else str(int(v["reached_at"]))
        click.echo(f"{v['loss_name']:6} {v['eta']:8.4g} {v['threshold']:7.2f} {v['lambda0']:8.2f} {at:>8} "
                   f"{int(v['hover_steps']):6d} {fmt(v['mean'], 3):>6} {fmt(v['min'], 3):>6} {fmt(v['max'], 3):>6} "
                   f"{fmt(v['ggn_over_h'], 3):>6}")  # fmt: skip
    if fig:
        click.echo("figures " + ", ".join(draw_sharpening([Run.open(s) for s in stores], fig)))


@analyze.command()
@click.argument("stores", nargs=-1, required=True)
@click.option(
    "--window", type=int, default=50, show_default=True, help="steps after the onset the growth is measured over"
)
@click.option("--lead", type=int, default=50, show_default=True, help="Γ frozen from this many steps before the onset")
@click.option("--horizon", type=int, default=1000, show_default=True, help="steps the frozen-Γ replay runs")
@click.option("--out", default=None, help="write the per-replica table to this .nc or .zarr")
@user_errors()
def onset(stores, window, lead, horizon, out):
    """What sets the first instability, per store: λ1/(2/η) at the onset, the bounce's measured
    growth against the tangent map's top exponent, the secant curvature at the bounce's
    amplitude over 2/η, and λ1/(2/η) at the onset with Γ frozen shortly before it."""
    import xarray as xr

    from landscape.analysis.onset import onset_physics

    if window < 2 or lead < 1 or horizon < 10:
        raise LandscapeError("--window >= 2, --lead >= 1 and --horizon >= 10 steps")
    parts = []
    click.echo(f"{'store':28} {'act':>10} {'loss':>6} {'n':>3} {'λ1/(2/η)':>14} {'growth':>8} {'exponent':>9} "
               f"{'secant/(2/η)':>13} {'frozen: n':>9} {'λ1/(2/η)':>9}")  # fmt: skip
    for s in stores:
        r = onset_physics(s, window, lead, horizon)
        parts.append(r.assign_coords(store=("replica", [s] * r.sizes["replica"])).drop_vars("replica"))
        ok = np.isfinite(r.ratio.values)
        fz = np.isfinite(r.frozen_ratio.values)
        act = r.attrs["activation"]
        if act == "softplus":
            act += f" β={r.attrs['softplus_beta']:g}"

        def ms(x):
            x = x[np.isfinite(x)]
            return "—" if not x.size else f"{x.mean():.3f}±{x.std(ddof=1) / np.sqrt(x.size) if x.size > 1 else 0:.3f}"

        click.echo(f"{Path(s).name[:28]:28} {act:>10} {r.attrs['loss_name']:>6} {int(ok.sum()):>3} "
                   f"{ms(r.ratio.values):>14} {np.nanmedian(r.growth.values) if ok.any() else np.nan:>8.4f} "
                   f"{np.nanmedian(r.exponent.values) if ok.any() else np.nan:>9.4f} {ms(r.secant.values):>13} "
                   f"{int(fz.sum()):>4}/{int(ok.sum()):<4} {ms(r.frozen_ratio.values):>9}")  # fmt: skip
    if out:
        table = xr.concat(parts, dim="replica")
        table.to_netcdf(out) if out.endswith(".nc") else table.to_zarr(out, mode="w")
        click.echo(f"saved to {out}")
