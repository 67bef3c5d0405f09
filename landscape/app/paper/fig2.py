"""Fig. 2: one DCE run (A = 70, T = 5000, η = 1): Γ_i(t), F(t), accuracy, λ1 and λ2 against
2/η, and loss slices in the top-2 eigenvector plane where the period-doubling cascade starts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landscape.config.sweep import SweepSpec

from .common import TINY, check_size, open_summary, table, write_summary

SLICE_STEPS = (8000, 9285, 9450, 9560, 9600)  # the paper's slices
FOLLOW = 20  # iterates drawn after each slice's step

__all__ = ["specs", "summarize", "report", "summary_names", "slice_steps"]


def slice_steps(recorded_steps: int, follow: int = FOLLOW) -> list[int]:
    """The paper's slice steps that a recording of this length holds (with `follow` iterates)."""
    return [s for s in SLICE_STEPS if s + follow < recorded_steps]


def specs(size: str) -> dict[str, SweepSpec]:
    """The one run of this figure (every size but `tiny` is the paper's)."""
    check_size(size)
    base = SweepSpec().replace(
        losses=("dce",), etas=(1.0,), amplitudes=(70.0,), periods=(5000,), widths=(100,), seeds=(0,)
    )
    if size == "tiny":
        return {"fig2": base.replace(widths=(8,), amplitudes=(5.0,), periods=(40,), steps=200, **TINY)}
    return {"fig2": base.replace(steps=10000, save_params_every=250)}


def summary_names(wanted, out: Path | None = None) -> list[str]:
    return ["fig2_summary.zarr", "fig2_slices.zarr"]


def summarize(stores, out: Path) -> None:
    """The run's series, its instabilities (exact λ at each onset) and the slices."""
    import xarray as xr

    from landscape.analysis.bifurcations import detect
    from landscape.analysis.figures import fig2_series
    from landscape.analysis.slices import loss_slices
    from landscape.runs.opened import Run

    run = Run.open(stores["fig2"][0])  # opened once for the detection, the slices and the series
    ds = run.ds
    bif = detect(run).isel(replica=0)
    steps = slice_steps(ds.sizes["step"])
    if not steps:  # short runs: around the first instability
        f = bif.first_instability.values
        base = int(f) if np.isfinite(f) else ds.sizes["step"] // 2
        steps = [s for s in (base - 20, base, base + 10) if 0 <= s and s + FOLLOW < ds.sizes["step"]][:3] or [0]
    grid = 41 if ds.sizes["param"] > 100 else 9
    sl = loss_slices(run, steps, 0, grid=grid, follow=FOLLOW if steps[0] + FOLLOW < ds.sizes["step"] else 0)
    keep = ["onset", "lambda1", "lambda1_t", "lambda1_t1", "first_instability"]
    summ = xr.merge([fig2_series(run, 0), bif[keep].drop_vars("level")], combine_attrs="override")
    summ = summ.assign_attrs(period=int(run.config.periods[0]), levels=list(map(str, bif.level.values)))
    write_summary(summ, out / "fig2_summary.zarr")
    write_summary(sl, out / "fig2_slices.zarr")


def report(out: Path, wanted) -> str:
    """Figure and report text from the summaries in `out`."""
    from landscape.analysis.figures import draw_fig2

    summ = open_summary(out / "fig2_summary.zarr")
    sl = open_summary(out / "fig2_slices.zarr")
    draw_fig2(out / "fig2.png", summ, sl)
    period = summ.attrs["period"]
    acc = summ.train_acc.values
    rows = []
    for k in range(summ.sizes["cycle"]):
        o = summ.onset.isel(cycle=k).values
        if np.isfinite(o[0]):
            lam = float(summ.lambda1.isel(cycle=k, level=0))
            la, lb = (float(summ[v].isel(cycle=k, level=0)) for v in ("lambda1_t", "lambda1_t1"))
            rows.append(
                (
                    k,
                    int(o[0]),
                    f"{(o[0] - k * period) / period:.2f}",
                    f"{la:.3f} / {lb:.3f}",
                    f"{lam:.3f}",
                    f"{lam * float(summ.eta) / 2:.3f}",
                    *["—" if not np.isfinite(v) else int(v) for v in o[1:]],
                )
            )
    return (
        "Paper: in the second half of each period the valley narrows; when λ1 crosses 2/η a "
        "period-doubling cascade starts (the iterate bounces between 2, then 4, … walls, visible in the "
        "slices) while accuracy keeps rising.\n\n![fig2](fig2.png)\n\n"
        f"Measured: training accuracy {acc[0]:.2f} at t = 0, {acc.max():.3f} at best, {acc[-1]:.3f} at the end.\n\n"
        + table(
            [
                "period",
                "first instability",
                "position in period",
                "λ1 at t / t+1",
                "branch mean",
                "mean / (2/η)",
                "period 2",
                "period 4",
                "period 8",
                "period 16",
                "chaos",
            ],
            rows,
        )
    )
