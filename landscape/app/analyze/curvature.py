"""`analyze` commands that read the curvature: the Hessian's eigenvalue density and λ_min."""

from __future__ import annotations

import click

from ..options import user_errors
from .common import analyze, beside, fig_dir


@analyze.command()
@click.argument("store")
@click.option("--at-step", "steps", type=int, multiple=True,
              help="training steps (repeat) [default: the recorded density's steps, else each saved step]")  # fmt: skip
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
@click.option("--method", type=click.Choice(["auto", "dense", "slq"]), default="auto", show_default=True,
              help="dense: every eigenvalue from the whole Hessian (exact); slq: stochastic Lanczos quadrature; "
                   "auto: dense for small networks")  # fmt: skip
@click.option("--out", default=None, help="write the result into this output store instead of the run store")
@click.option("--fig", default=None, help="PNG/PDF path [default ./<store>_density_r<replica>.png]")
@user_errors()
def density(store, steps, replica, lanczos_steps, vectors, bottom_k, recompute, method, out, fig):
    """The Hessian's eigenvalue density (stochastic Lanczos quadrature) and λ_min: read where the
    run recorded them (record --density-steps/--bottom-k), else computed at stored steps by replay."""
    from landscape.analysis.figures import draw_density
    from landscape.analysis.io import check_target, save_result
    from landscape.analysis.spectra import density as compute
    from landscape.runs.opened import Run

    fig = fig or beside(store, out, f"density_r{replica}.png")
    fig_dir(fig, "--fig")
    check_target(store, out)
    run = Run.open(store)
    res = compute(run, list(steps) or None, replica, lanczos_steps, vectors, bottom_k, recompute=recompute,
                  method=method)  # fmt: skip
    how = ("the whole spectrum (exact)" if res.attrs["method"] == "dense"
           else f"SLQ, M = {res.attrs['lanczos_steps']}, V = {res.attrs['vectors']}")  # fmt: skip
    click.echo(f"nodes {res.attrs['nodes_from']}, λ_min {res.attrs['lambda_min_from']} ({how})")
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
