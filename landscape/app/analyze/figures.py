"""`plot`: the paper's figures drawn from recorded stores."""

from __future__ import annotations

import click

from ..options import user_errors
from ..paper import fig2 as paper_fig2
from .common import fig_dir, plot


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
@click.option("--fig", default="fig2.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def fig2(store, replica, slice_steps, grid, fig):
    """Fig. 2: Γ_i(t), F(t), training accuracy, λ1 and λ2 with 2/η, and loss slices."""
    from landscape.analysis.figures import draw_fig2, fig2_series
    from landscape.analysis.slices import loss_slices
    from landscape.runs.opened import Run

    fig_dir(fig, "--fig")
    run = Run.open(store)  # opened once for the slices and the figure
    ds = run.ds
    steps = list(slice_steps) or paper_fig2.slice_steps(ds.sizes["step"])
    sl = loss_slices(run, steps, replica, grid=grid) if steps else None
    click.echo("figures " + ", ".join(draw_fig2(fig, fig2_series(run, replica), sl)))


@plot.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--fig", default="fig1.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def fig1(stores, fig):
    """Fig. 1: mean F(t) and λ_max(t) over replicas, per width and η (one store per width)."""
    from landscape.analysis.edge_of_stability import draw, summarize

    fig_dir(fig, "--fig")
    click.echo("figures " + ", ".join(draw(summarize(stores), fig)))


@plot.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--fig", default="fig4.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def fig4(stores, fig):
    """Fig. 4: λ_max at the first instability vs η (same as `analyze instability`, figure only)."""
    from landscape.analysis.figures import draw_fig4
    from landscape.analysis.first_instability import first_instabilities, summarize

    fig_dir(fig, "--fig")
    click.echo("figures " + ", ".join(draw_fig4(summarize(first_instabilities(stores)), fig)))


@plot.command()
@click.argument("stores", nargs=-1, required=True)
@click.option("--eta", type=float, default=None, help="the η whose replicas are drawn [default: each run's middle η]")
@click.option("--fig", default="edges.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def edges(stores, eta, fig):
    """Each optimizer at its own edge: the sharpness over the run's threshold through training.

    Prints, per store and η, where the sharpness sits over the second half (quantiles across
    replicas of each replica's median sharpness/threshold)."""
    from landscape.analysis.edge_of_stability import draw_edges, hovering
    from landscape.runs.opened import Run

    fig_dir(fig, "--fig")
    h = hovering(stores)
    click.echo(f"{'optimizer':>14} {'loss':>6} {'eta':>7} {'threshold':>9} {'sharpness':>9} {'runs':>4} "
               f"{'÷ threshold: q10':>16} {'median':>7} {'q90':>6}")  # fmt: skip
    for i in range(h.sizes["row"]):
        r = {k: h[k].values[i] for k in h.data_vars}
        click.echo(f"{r['optimizer']:>14} {r['loss_name']:>6} {r['eta']:>7g} {r['threshold']:>9.4g} "
                   f"{r['sharpness']:>9} {r['n_runs']:>4} {r['q10']:>16.3f} {r['median']:>7.3f} "
                   f"{r['q90']:>6.3f}")  # fmt: skip
    click.echo("figures " + ", ".join(draw_edges([Run.open(s) for s in stores], fig, eta)))


@plot.command()
@click.argument("store")
@click.option("--replica", default=0, type=click.IntRange(min=0), show_default=True, help="replica index")
@click.option("--start", default=None, type=int, help="first step drawn [default: 1,000 before the first instability]")
@click.option("--stop", default=None, type=int, help="step after the last drawn [default: the end of the recording]")
@click.option("--exponents", default=0, type=click.IntRange(min=0), show_default=True,
              help="also the top Lyapunov exponent over windows of this many steps (0: off; by replay)")  # fmt: skip
@click.option("--floquet", is_flag=True, help="mark where the multipliers cross -1 near each onset (by replay)")
@click.option("--fig", default="bifurcation.png", show_default=True, help="figure path (PNG and PDF are written)")
@user_errors()
def bifurcation(store, replica, start, stop, exponents, floquet, fig):
    """The bifurcation diagram of one replica: θ projected on v1 at its first instability
    against the step (the branches of each period), the loss, the detector's onsets and
    optionally the multipliers' and the windowed top exponent."""
    import numpy as np

    from landscape.analysis.bifurcations import detect
    from landscape.analysis.figures import bifurcation_series, draw_bifurcation
    from landscape.runs.opened import Run

    fig_dir(fig, "--fig")
    run = Run.open(store)
    res = detect(run, lambda_source="recorded", floquet=floquet) if floquet else None
    done = run.steps_done
    if start is None:
        first = res if res is not None else detect(run, lambda_source="recorded", confirm_chaos=False)
        t = first.first_instability.values[min(replica, run.ds.sizes["replica"] - 1)]
        start = max(0, int(t) - 1000) if np.isfinite(t) else 0
    series = bifurcation_series(run, replica, start, done if stop is None else stop, exponents)
    click.echo("figures " + ", ".join(draw_bifurcation(series, fig, res)))
