"""`landscape analyze …` and `landscape plot …`: thin click wrappers over `landscape.analysis`."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from landscape import LandscapeError
from landscape.analysis.bifurcations import LAMBDA_SOURCES, VARIABLES

from .options import detector_options, user_errors
from .paper import fig2 as paper_fig2


@click.group()
def analyze():
    """Analyse recorded stores (read-only; results go to a group of the store or --out)."""


@click.group()
def plot():
    """Draw the paper's figures from recorded stores (PNG and PDF)."""


def _summary_out(out) -> None:
    """An output store of summaries: never a recorded run, writable, checked before the work."""
    if not out:
        return
    from landscape.analysis.io import check_target
    from landscape.store.run import is_store

    if is_store(out):
        raise LandscapeError(f"--out {out} is a recorded run; choose a separate output store")
    check_target(out, out)


def _save_pair(out, name, runs, summary) -> str:
    """Save the per-run and summary datasets as `name/runs`, `name/summary` of the store `out`."""
    if not out:
        return ""
    from landscape.analysis.io import save_result

    save_result(runs, out, f"{name}/runs", out)
    save_result(summary, out, f"{name}/summary", out)
    return f"; datasets in {out}/{name}"


# summary tables: (header, width, variable, format)
# fmt: off
CONDITION = [("loss", 6, "loss_name", "s"), ("eta", 7, "eta", "g"), ("A", 5, "amplitude", "g"), ("T", 6, "period", "d")]
INSTABILITY_COLUMNS = [("runs", 4, "n_runs", "d"), ("unstable", 8, "n_unstable", "d"),
                       ("at start", 8, "n_from_start", "d"), ("λ1 mean", 9, "lambda1_mean", ".3f"),
                       ("± s.e.", 7, "lambda1_sem", ".3f"),
                       ("spread", 7, "spread_mean", ".3f"), ("2/η", 7, "two_over_eta", ".3g"),
                       ("λ1/(2/η)", 9, "ratio_mean", ".3f"), ("± s.e.", 7, "ratio_sem", ".3f"),
                       ("onset", 7, "onset_mean", ".0f")]
GENERALIZATION_COLUMNS = [("runs", 4, "n", "d"), ("val acc", 8, "val_mean", ".3f"), ("± s.e.", 7, "val_sem", ".3f"),
                          ("train acc", 9, "train_mean", ".3f"), ("± s.e.", 7, "train_sem", ".3f"),
                          # still changing? (analysis.generalization.late_change; — where undefined)
                          ("drift", 6, "train_drift", "+.3f"), ("static gain", 11, "static_gain", "+.3f"),
                          ("settle", 6, "static_settle", "+.3f")]
# fmt: on


def _summary_command(default_fig: str):
    """An `analyze` command over many stores that prints a summary, draws it and may save it."""

    def deco(fn):
        fn = user_errors()(fn)
        fn = click.option(
            "--fig", default=default_fig, show_default=True, help="figure path (PNG and PDF are written)"
        )(fn)
        fn = click.option(
            "--out", default=None, help="output store for the per-run and summary datasets [default: none]"
        )(fn)
        fn = click.argument("stores", nargs=-1, required=True)(fn)
        return analyze.command()(fn)

    return deco


def _print_summary(summ, columns):
    """One line per condition of a summary dataset; columns: (header, width, variable, format)."""
    click.echo(" ".join(f"{h:>{w}}" for h, w, _, _ in columns))
    for i in range(summ.sizes["condition"]):
        s = summ.isel(condition=i)
        cells = []
        for _, w, var, fmt in columns:
            v = s[var].values.item()
            if fmt == "s":
                text = str(v)
            elif fmt == "d":
                text = f"{int(v)}"
            else:
                text = "—" if not np.isfinite(v) else f"{float(v):{fmt}}"
            cells.append(f"{text:>{w}}")
        click.echo(" ".join(cells))


def _fmt(v, nd=0):
    return "—" if v is None or not np.isfinite(v) else (f"{v:.{nd}f}" if nd else f"{int(v)}")


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
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@user_errors()
def bifurcations(store, series, period, variable, lambda_source, out, **settings):
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
                click.echo(f"{c:>5} " + " ".join(f"{_fmt(v):>7}" for v in o))
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
    res = detect(store, det, variable, lambda_source)
    click.echo(
        f"{'rep':>3} {'seed':>4} {'eta':>7} {'A':>5} {'T':>6} {'cycle':>5} {'instab':>7} {'p2':>7} {'p4':>7} "
        f"{'p8':>7} {'p16':>7} {'chaos':>7} {'λ1(t)':>7} {'λ1(t+1)':>7} {'λ1 mean':>7} {'λ2':>7} {'2/η':>6} "
        f"{'λ1/(2/η)':>9}"
    )
    o, l1, l2 = res.onset.values, res.lambda1.values, res.lambda2.values
    la, lb = res.lambda1_t.values, res.lambda1_t1.values
    for r in range(res.sizes["replica"]):
        for k in range(res.sizes["cycle"]):
            if not np.isfinite(o[r, k, 0]):
                continue
            tw = float(res.two_over_eta[r])
            click.echo(
                f"{r:>3} {int(res.seed[r]):>4} {float(res.eta[r]):>7g} {float(res.amplitude[r]):>5g} "
                f"{int(res.period[r]):>6} {k:>5} "
                + " ".join(f"{_fmt(v):>7}" for v in o[r, k])
                + f" {_fmt(la[r, k, 0], 3):>7} {_fmt(lb[r, k, 0], 3):>7} {_fmt(l1[r, k, 0], 3):>7}"
                f" {_fmt(l2[r, k, 0], 3):>7} {tw:>6g} {_fmt(l1[r, k, 0] / tw, 3):>9}"
            )
    none = int((~np.isfinite(res.first_instability.values)).sum())
    if none:
        click.echo(f"{none} replica(s) showed no instability")
    start = int(res.unstable_from_start.values.sum())
    if start:
        click.echo(f"{start} replica(s) unstable from the first steps (no first instability to read λ at)")
    click.echo(f"saved to {save_result(res, store, 'bifurcations', out)}")


@analyze.command()
@click.argument("store")
@click.option("--step", "steps", type=int, multiple=True, required=True, help="step of the slice (repeat for several)")
@click.option("--replica", default=0, type=click.IntRange(min=0), show_default=True, help="replica index")
@click.option("--grid", default=41, type=click.IntRange(min=3), show_default=True, help="grid points per axis")
@click.option("--span", default=1.0, show_default=True, help="a, b ∈ [−span, span]")
@click.option(
    "--follow", default=20, type=click.IntRange(min=0), show_default=True, help="iterates after x_t to project"
)
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@click.option("--fig", default=None, help="PNG/PDF path [default ./<store>_slices_r<replica>.png]")
@user_errors()
def slices(store, steps, replica, grid, span, follow, out, fig):
    """The loss in the plane of the top-2 Hessian eigenvectors at the given steps, with the iterates."""

    from landscape.analysis.figures import draw_slices
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.slices import loss_slices

    fig = fig or _beside(store, out, f"slices_r{replica}.png")
    _fig_dir(fig, "--fig")
    check_target(store, out)
    res = loss_slices(store, steps, replica, grid=grid, span=span, follow=follow)
    click.echo(f"{'step':>7} {'λ1':>8} {'λ2':>8} {'F(x_t)':>9} {'min F':>9} {'max off-plane':>13}  eigenvectors")
    for i, s in enumerate(res.slice_step.values):
        r = res.isel(slice_step=i)
        src = res.attrs["eigvec_source"].split(",")[i]
        click.echo(
            f"{int(s):>7} {float(r.eigval[0]):>8.4f} {float(r.eigval[1]):>8.4f} {float(r.iter_loss[0]):>9.4g} "
            f"{float(r.loss.min()):>9.4g} {float(r.iter_offplane.max()):>13.4g}  {src}"
        )
    saved = [
        save_result(res.sel(slice_step=s).drop_vars("slice_step"), store, f"slices/r{replica}_t{int(s)}", out)
        for s in res.slice_step.values
    ]
    figs = draw_slices(res, fig)
    click.echo(f"saved to {', '.join(saved)}; figures {', '.join(figs)}")


@analyze.command()
@click.argument("store")
@click.option("--step", type=int, required=True, help="the step whose θ is the centre")
@click.option("--replica", default=0, type=click.IntRange(min=0), show_default=True, help="replica index")
@click.option(
    "--directions",
    type=click.Choice(["random", "eigen", "pca"]),
    default="random",
    show_default=True,
    help="random (filter-normalised, seeded), the top Hessian eigenvectors, or the path's PCA plane",
)
@click.option("--dims", type=click.IntRange(1, 2), default=2, show_default=True, help="a 1-D or 2-D surface")
@click.option("--grid", default=51, type=click.IntRange(min=2), show_default=True, help="grid points per axis")
@click.option("--span", default=None, type=float, help="a, b ∈ [−span, span] [default 1; pca: the path's extent]")
@click.option("--seed", default=0, type=click.IntRange(min=0), show_default=True, help="seed of the random directions")
@click.option(
    "--bias",
    type=click.Choice(["zero", "keep"]),
    default="zero",
    show_default=True,
    help="random directions' 1-D parameters: zero, or θ's own (loss-landscape's options)",
)
@click.option(
    "--batch",
    default=16,
    type=click.IntRange(min=1),
    show_default=True,
    help="grid points per batched evaluation (memory: docs/performance.md)",
)
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@click.option("--fig", default=None, help="PNG/PDF path [default ./<store>_surface_<directions>_t<step>.png]")
@click.option("--html", "html", is_flag=True, help="also an interactive 3-D view, one HTML file (extra: html)")
@user_errors()
def surface(store, step, replica, directions, dims, grid, span, seed, bias, batch, out, fig, html):
    """F_t, static loss and accuracies on a grid around θ_t (loss-landscape's surfaces, batched)."""
    from landscape.analysis.figures import draw_surface
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.surfaces import surface as compute

    fig = fig or _beside(store, out, f"surface_{directions}_t{step}.png")
    _fig_dir(fig, "--fig")
    check_target(store, out)
    if html:  # before the work: a missing extra or a 1-D request is one line
        from landscape.machine.extras import require

        require("plotly.graph_objects", "html", "an interactive surface (--html)")
        if dims != 2:
            raise LandscapeError("--html draws 2-D surfaces (--dims 2)")
    res = compute(store, step, replica, directions, grid, span, dims, seed, bias, batch)
    c = res.loss.values
    centre = float(res.loss.sel({d: 0.0 for d in res.loss.dims}, method="nearest"))
    click.echo(f"{c.size} points; F_t at θ_t {centre:.6g}, min {np.nanmin(c):.6g}, max {np.nanmax(c):.6g}")
    group = f"surface/{directions}_r{replica}_t{step}_d{dims}"
    figs = draw_surface(res, fig)
    if html:
        from landscape.analysis.figures import surface_html

        figs.append(surface_html(res, Path(fig).with_suffix(".html")))
    click.echo(f"saved to {save_result(res, store, group, out)}; figures {', '.join(figs)}")


@analyze.command()
@click.argument("store")
@click.option("--from-step", "step_a", type=click.IntRange(min=0), required=True, help="the step of θ_a")
@click.option("--to-step", "step_b", type=click.IntRange(min=0), default=None, help="[default: --from-step]")
@click.option("--replica", default=0, type=click.IntRange(min=0), show_default=True, help="replica index")
@click.option("--to-replica", default=None, type=click.IntRange(min=0), help="[default: --replica]")
@click.option("--to-store", default=None, help="θ_b from another store [default: the same]")
@click.option("--alpha-min", default=-0.5, show_default=True, help="first α of the line")
@click.option("--alpha-max", default=1.5, show_default=True, help="last α of the line")
@click.option("--points", default=41, type=click.IntRange(min=2), show_default=True, help="points on the line")
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@click.option("--fig", default=None, help="PNG/PDF path [default ./<store>_interpolate.png]")
@user_errors()
def interpolate(store, step_a, step_b, replica, to_replica, to_store, alpha_min, alpha_max, points, out, fig):
    """F and accuracy along θ(α) = (1 − α)θ_a + αθ_b between two steps, replicas or stores."""
    from landscape.analysis.figures import draw_interpolation
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.surfaces import interpolate as compute
    from landscape.machine import memory

    if points < 2 or not (np.isfinite(alpha_min) and np.isfinite(alpha_max) and alpha_min < alpha_max):
        raise LandscapeError("interpolation needs --points >= 2 and finite --alpha-min < --alpha-max")
    memory.require(points * 8 * 6, f"{points} points of a line")
    fig = fig or _beside(store, out, "interpolate.png")
    _fig_dir(fig, "--fig")
    check_target(store, out)
    alphas = np.linspace(alpha_min, alpha_max, points)
    res = compute(store, step_a, replica, to_store, step_b, to_replica, alphas)
    for a in (0.0, 1.0):
        r = res.sel(alpha=a, method="nearest")
        click.echo(f"α = {float(r.alpha):g}: F {float(r.loss):.6g}, train acc {float(r.train_acc):.4f}")
    click.echo(
        f"max F on the line {float(res.loss.max()):.6g} at α = {float(res.alpha[int(np.argmax(res.loss.values))]):g}"
    )
    at = res.attrs
    group = f"interpolate/r{at['replica_a']}_t{at['step_a']}_to_r{at['replica_b']}_t{at['step_b']}"
    click.echo(f"saved to {save_result(res, store, group, out)}; figures {', '.join(draw_interpolation(res, fig))}")


@analyze.command()
@click.argument("store")
@click.option("--replica", default=0, type=click.IntRange(min=0), show_default=True, help="replica index")
@click.option(
    "--components", default=2, type=click.IntRange(min=1), show_default=True, help="principal components kept"
)
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@user_errors()
def pca(store, replica, components, out):
    """Principal directions of the saved path (θ_t − θ_last) and the path in their coordinates;
    `analyze surface --directions pca` draws the surface on that plane with the path."""
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.surfaces import pca as compute

    check_target(store, out)
    res = compute(store, replica, components)
    click.echo("explained variance: " + ", ".join(f"PC{i + 1} {v:.1%}" for i, v in enumerate(res.explained.values)))
    click.echo(f"saved to {save_result(res, store, f'pca/r{replica}', out)}")


@analyze.command()
@click.argument("store")
@click.option("--step", "steps", type=int, multiple=True,
              help="steps (repeat) [default: the recorded density's steps, else every saved step]")  # fmt: skip
@click.option("--replica", default=0, type=click.IntRange(min=0), show_default=True, help="replica index")
@click.option(
    "--lanczos-steps",
    type=click.IntRange(min=2),
    default=None,
    help="M: Lanczos steps per vector [default: recorded, else 80]",
)
@click.option(
    "--vectors", type=click.IntRange(min=1), default=None, help="V: random vectors per step [default: recorded, else 8]"
)
@click.option(
    "--bottom-k",
    type=click.IntRange(min=1),
    default=None,
    help="bottom eigenvalues per step [default: recorded, else 1]",
)
@click.option("--recompute", is_flag=True, help="compute by replay even where the run recorded the density")
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@click.option("--fig", default=None, help="PNG/PDF path [default ./<store>_density_r<replica>.png]")
@user_errors()
def density(store, steps, replica, lanczos_steps, vectors, bottom_k, recompute, out, fig):
    """The Hessian's eigenvalue density (stochastic Lanczos quadrature) and λ_min: read where the
    run recorded them (record --density-steps/--bottom-k), else computed at stored steps by replay."""
    from landscape.analysis.figures import draw_density
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.spectra import density as compute
    from landscape.runs.opened import Run

    fig = fig or _beside(store, out, f"density_r{replica}.png")
    _fig_dir(fig, "--fig")
    check_target(store, out)
    run = Run.of(store)
    res = compute(run, list(steps) or None, replica, lanczos_steps, vectors, bottom_k, recompute=recompute)
    click.echo(f"nodes {res.attrs['nodes_from']}, λ_min {res.attrs['lambda_min_from']} "
               f"(M = {res.attrs['lanczos_steps']}, V = {res.attrs['vectors']})")  # fmt: skip
    click.echo(f"{'step':>7} {'λ_min':>10} {'residual':>9} {'largest node':>12}")
    for i, t in enumerate(res.step.values):
        r = res.isel(step=i)
        click.echo(
            f"{int(t):>7} {float(r.lambda_min[0]):>10.4g} {float(r.lambda_min_residual[0]):>9.1e} "
            f"{float(r.nodes.max()):>12.4g}"
        )
    rec = run.ds.isel(replica=replica)
    saved = save_result(res, store, f"density/r{replica}", out)
    click.echo(f"saved to {saved}; figures {', '.join(draw_density(res, rec, fig))}")


def _beside(store: str, out: str | None, what: str) -> str:
    """The default figure path: `<store name>_<what>` next to the result it draws (the output
    store, else the run store), not in the current directory."""
    return str(Path(out or store.rstrip("/")).parent / f"{Path(store.rstrip('/')).stem}_{what}")


def _fig_dir(fig, flag: str) -> None:
    """Refuse a figure path whose folder does not exist, before any work is done."""
    if not Path(fig).parent.is_dir():
        raise LandscapeError(f"{flag} {fig}: directory {Path(fig).parent} does not exist")


@_summary_command("fig4.png")
def instability(stores, out, fig):
    """λ1 at the first instability vs η per (loss, η, A, T): mean ± s.e. over replicas, next to 2/η."""
    from landscape.analysis.figures import draw_fig4
    from landscape.analysis.first_instability import first_instabilities, summarize

    _fig_dir(fig, "--fig")
    _summary_out(out)
    runs = first_instabilities(stores)
    summ = summarize(runs)
    _print_summary(summ, CONDITION + INSTABILITY_COLUMNS)
    click.echo("figures " + ", ".join(draw_fig4(summ, fig)) + _save_pair(out, "instability", runs, summ))


@plot.command()
@click.argument("store")
@click.option("--replica", default=0, type=click.IntRange(min=0), show_default=True, help="replica index")
@click.option(
    "--slice-step",
    "slice_steps",
    type=int,
    multiple=True,
    help="steps of the slices [default the paper's 8000 9285 9450 9560 9600 where recorded]",
)
@click.option(
    "--grid", default=41, type=click.IntRange(min=3), show_default=True, help="grid points per axis of the slices"
)
@click.option("--out", default="fig2.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def fig2(store, replica, slice_steps, grid, out):
    """Fig. 2: Γ_i(t), F(t), training accuracy, λ1 and λ2 with 2/η, and loss slices."""
    from landscape.analysis.figures import draw_fig2, fig2_series
    from landscape.analysis.slices import loss_slices
    from landscape.runs.opened import Run

    _fig_dir(out, "--out")
    run = Run.of(store)  # opened once for the slices and the figure
    ds = run.ds
    steps = list(slice_steps) or paper_fig2.slice_steps(ds.sizes["step"])
    sl = loss_slices(run, steps, replica, grid=grid) if steps else None
    click.echo("figures " + ", ".join(draw_fig2(out, fig2_series(run, replica), sl)))


@plot.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--out", default="fig1.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def fig1(stores, out):
    """Fig. 1: mean F(t) and λ_max(t) over replicas, per width and η (one store per width)."""
    from landscape.analysis.edge_of_stability import draw, summarize

    _fig_dir(out, "--out")
    click.echo("figures " + ", ".join(draw(summarize(stores), out)))


@plot.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--out", default="fig4.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def fig4(stores, out):
    """Fig. 4: λ_max at the first instability vs η (same as `analyze instability`, figure only)."""
    from landscape.analysis.figures import draw_fig4
    from landscape.analysis.first_instability import first_instabilities, summarize

    _fig_dir(out, "--out")
    click.echo("figures " + ", ".join(draw_fig4(summarize(first_instabilities(stores)), out)))


@_summary_command("fig3.png")
def generalization(stores, out, fig):
    """Validation accuracy vs width (Fig. 3): mean ± s.e. over seeds per loss, at the last step."""
    from landscape.analysis.generalization import draw_fig3, final_accuracies, summarize

    _fig_dir(fig, "--fig")
    _summary_out(out)
    runs = final_accuracies(stores)
    summ = summarize(runs)
    _print_summary(summ, CONDITION[:1] + [("width", 5, "width", "d")] + CONDITION[1:] + GENERALIZATION_COLUMNS)
    click.echo("figures " + ", ".join(draw_fig3(summ, fig)) + _save_pair(out, "generalization", runs, summ))
