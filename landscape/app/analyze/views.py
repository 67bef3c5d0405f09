"""`analyze` commands that draw views of the landscape around recorded θ: eigenvector-plane
slices, surfaces (random, eigen or PCA directions), interpolation, and the path's PCA."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from landscape import LandscapeError

from ..options import user_errors
from .common import analyze, beside, fig_dir


def _dtype_tag(res) -> str:
    """A float32 view is saved beside the float64 one, not over it."""
    return "_float32" if res.attrs.get("dtype") == "float32" else ""


DTYPE = click.option(
    "--dtype",
    type=click.Choice(["float64", "float32"]),
    default=None,
    help="the evaluation's floating point type [default: the recording's]; float32 is faster and "
    "said on the figure, θ and the directions stay the recording's",
)


@analyze.command()
@click.argument("store")
@click.option("--at-step", "steps", type=int, multiple=True, required=True,
              help="training step of the slice (repeat for several)")  # fmt: skip
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

    fig = fig or beside(store, out, f"slices_r{replica}.png")
    fig_dir(fig, "--fig")
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
@click.option("--at-step", "step", type=int, required=True, help="the training step whose θ is the centre")
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
    default=None,
    type=click.IntRange(min=1),
    help="grid points per batched evaluation [default: a C forward (the built-in MLP's, a chain network's tap "
    "tables) takes them all, up to 16 MB of θ rows; other networks 16; memory: docs/performance.md]",
)
@DTYPE
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@click.option("--fig", default=None, help="PNG/PDF path [default ./<store>_surface_<directions>_t<step>.png]")
@click.option("--html", "html", is_flag=True, help="also an interactive 3-D view, one HTML file (extra: html)")
@user_errors()
def surface(store, step, replica, directions, dims, grid, span, seed, bias, batch, dtype, out, fig, html):
    """F_t, static loss and accuracies on a grid around θ_t (loss-landscape's surfaces, batched)."""
    from landscape.analysis.figures import draw_surface
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.surfaces import surface as compute

    fig = fig or beside(store, out, f"surface_{directions}_t{step}.png")
    fig_dir(fig, "--fig")
    check_target(store, out)
    if html:  # before the work: a missing extra or a 1-D request is one line
        from landscape.machine.extras import require

        require("plotly.graph_objects", "html", "an interactive surface (--html)")
        if dims != 2:
            raise LandscapeError("--html draws 2-D surfaces (--dims 2)")
    res = compute(store, step, replica, directions, grid, span, dims, seed, bias, batch, dtype=dtype)
    c = res.loss.values
    centre = float(res.loss.sel({d: 0.0 for d in res.loss.dims}, method="nearest"))
    click.echo(f"{c.size} points; F_t at θ_t {centre:.6g}, min {np.nanmin(c):.6g}, max {np.nanmax(c):.6g}")
    group = f"surface/{directions}_r{replica}_t{step}_d{dims}{_dtype_tag(res)}"
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
@DTYPE
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@click.option("--fig", default=None, help="PNG/PDF path [default ./<store>_interpolate.png]")
@user_errors()
def interpolate(store, step_a, step_b, replica, to_replica, to_store, alpha_min, alpha_max, points, dtype, out, fig):
    """F and accuracy along θ(α) = (1 − α)θ_a + αθ_b between two steps, replicas or stores."""
    from landscape.analysis.figures import draw_interpolation
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.surfaces import interpolate as compute
    from landscape.machine import memory

    if points < 2 or not (np.isfinite(alpha_min) and np.isfinite(alpha_max) and alpha_min < alpha_max):
        raise LandscapeError("interpolation needs --points >= 2 and finite --alpha-min < --alpha-max")
    memory.require(points * 8 * 6, f"{points} points of a line")
    fig = fig or beside(store, out, "interpolate.png")
    fig_dir(fig, "--fig")
    check_target(store, out)
    alphas = np.linspace(alpha_min, alpha_max, points)
    res = compute(store, step_a, replica, to_store, step_b, to_replica, alphas, dtype=dtype)
    for a in (0.0, 1.0):
        r = res.sel(alpha=a, method="nearest")
        click.echo(f"α = {float(r.alpha):g}: F {float(r.loss):.6g}, train acc {float(r.train_acc):.4f}")
    click.echo(
        f"max F on the line {float(res.loss.max()):.6g} at α = {float(res.alpha[int(np.argmax(res.loss.values))]):g}"
    )
    at = res.attrs
    group = f"interpolate/r{at['replica_a']}_t{at['step_a']}_to_r{at['replica_b']}_t{at['step_b']}{_dtype_tag(res)}"
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
