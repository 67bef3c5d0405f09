"""The phase diagram in (amplitude A, period T): where a dynamical loss improves on its static
loss, where it hurts, and whether the gain goes with instabilities or with forgetting (the
paper's text claims such a region and points to its unpublished supplement).

Per loss pair (DCE vs CE at η = 1, widths 20 and 50, near CE's transition in Fig. 3; DMSE1 vs
MSE at η = 0.075, width 50): one sweep per period T over the amplitudes and seeds (the
per-class accuracy is read every T/25 steps, so a period holds 25 readings for the forgetting
measure), and one sweep of the static loss, every run equally long, the last period static
as in Fig. 3. The summaries keep one row per run (`analysis.phase.runs`); the report holds
every cell against the static loss (`analysis.phase.cells`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr

from landscape.config.sweep import SweepSpec

from .common import TINY, check_size, open_summary, summary_names, table, write_summary

AMPLITUDES = (1.5, 2.0, 5.0, 10.0, 25.0, 50.0, 70.0, 100.0, 200.0)
PERIODS = (50, 200, 1000, 5000, 20000)
# (dynamical loss, static loss, η, width) of each pair
PAIRS = {"dce_w20": ("dce", "ce", 1.0, 20), "dce_w50": ("dce", "ce", 1.0, 50), "dmse1_w50": ("dmse1", "mse", 0.075, 50)}
SEEDS = 10
STEPS = 100000  # T = 20000: four dynamical periods and a static one
STATIC_PERIOD = 1000  # the static runs' Γ is 1 throughout; their period only spaces the forgetting reading


class Grid(NamedTuple):
    """A size's cells, seeds per cell, run length and loss pairs."""

    amplitudes: tuple[float, ...]
    periods: tuple[int, ...]
    seeds: int
    steps: int
    pairs: tuple[str, ...]


GRIDS = {
    "full": Grid(AMPLITUDES, PERIODS, SEEDS, STEPS, tuple(PAIRS)),
    "scaled": Grid(AMPLITUDES, PERIODS, 5, 50000, tuple(PAIRS)),
    "quick": Grid((2.0, 10.0, 70.0), (50, 1000), 3, 6000, ("dce_w20",)),
    "tiny": Grid((2.0, 10.0), (20, 40), 2, 120, ("dce_w20",)),
}

__all__ = ["specs", "summarize", "report", "summary_names"]


def _sweep(loss: str, eta: float, width: int, amplitudes, period: int, seeds: int, steps: int) -> SweepSpec:
    every = max(1, steps // 10)
    return SweepSpec().replace(
        losses=(loss,),
        widths=(width,),
        etas=(eta,),
        amplitudes=tuple(amplitudes),
        periods=(period,),
        seeds=tuple(range(seeds)),
        steps=steps,
        static_last=True,
        class_accuracy=True,
        step="fused",
        eval_every=max(1, min(100, period // 25)),
        hessian_every=every,
        save_params_every=every,
        chunk_steps=every,
        batch_size=max(1, math.ceil(len(amplitudes) * seeds / 2)),  # two batches: one per worker of two
    )


def specs(size: str) -> dict[str, SweepSpec]:
    """The sweeps at a size, by name: `phase_<pair>_T<T>` and `phase_<pair>_static`."""
    check_size(size)
    grid = GRIDS[size]
    out = {}
    for pair in grid.pairs:
        dyn, static, eta, width = PAIRS[pair]
        if size == "tiny":
            width = 4
        for T in grid.periods:
            out[f"phase_{pair}_T{T}"] = _sweep(dyn, eta, width, grid.amplitudes, T, grid.seeds, grid.steps)
        base = _sweep(static, eta, width, (1.0,), min(STATIC_PERIOD, grid.steps // 4), grid.seeds, grid.steps)
        out[f"phase_{pair}_static"] = base.replace(static_last=False)
    if size == "tiny":
        out = {k: v.replace(**{**TINY, "hessian_every": 40, "save_params_every": 40, "chunk_steps": 40})
               for k, v in out.items()}  # fmt: skip
    return out


def summarize(stores, out: Path) -> None:
    """One row per run (accuracies, settling, forgetting, first instability), one summary per sweep."""
    from landscape.analysis.phase import runs

    for name, paths in stores.items():
        write_summary(runs(paths), out / f"{name}_summary.zarr")


def pairs(wanted) -> dict[str, tuple[list[str], str]]:
    """{pair: (its dynamical sweeps, its static sweep)} of the sweeps `wanted`."""
    out: dict[str, tuple[list[str], str]] = {}
    for name in wanted:
        pair, _, part = name.removeprefix("phase_").rpartition("_")
        dyn, static = out.get(pair, ([], ""))
        out[pair] = (dyn, name) if part == "static" else ([*dyn, name], static)
    return out


def grids(out: Path, wanted) -> list[xr.Dataset]:
    """The (A, T) grid of each pair from the summaries in `out`."""
    from landscape.analysis.phase import cells

    found = []
    for dyn, static in pairs(wanted).values():
        runs = xr.concat([open_summary(out / f"{n}_summary.zarr") for n in dyn], dim="run")
        found.append(cells(runs, open_summary(out / f"{static}_summary.zarr")))
    return found


def report(out: Path, wanted) -> str:
    """Figure and report text from the summaries in `out`."""
    from landscape.analysis.phase import draw

    gs = grids(out, wanted)
    draw(gs, out / "phase.png")
    text = (
        "Paper: there is a region of (A, T) where the dynamical losses improve on their static versions; results "
        "deteriorate when A and T become too large, and catastrophic forgetting can then occur.\n\n"
        "![phase](phase.png)\n\n"
        "Gain: mean final validation accuracy (after a static last period) of the dynamical loss minus the static "
        "loss's, ± s.e. (the two in quadrature); **bold** where |gain| > 2 s.e. Forgetting: the mean over the "
        "dynamical periods of the largest within-period drop of any class's validation accuracy (docs/reference/"
        "analysis.md). Unstable: the fraction of runs with a first instability (the detector of Fig. 4).\n\n"
    )
    for g in gs:
        name = f"{g.attrs['loss'].upper()} vs {g.attrs['static_loss'].upper()}"
        text += (
            f"## {name}, width {g.attrs['width']}, η = {g.attrs['eta']:g}\n\n"
            f"Static {g.attrs['static_loss'].upper()}: validation accuracy {g.attrs['static_val_mean']:.3f} ± "
            f"{g.attrs['static_val_sem']:.3f} ({g.attrs['static_n']} runs), forgetting "
            f"{_num(g.attrs['static_forgetting'])}, unstable {g.attrs['static_unstable']:.2f}, settled "
            f"{g.attrs['static_settled']:.2f}.\n\n"
        )
        text += "Gain in validation accuracy:\n\n" + _grid_table(g, _gain) + "\n"
        text += "Forgetting:\n\n" + _grid_table(g, lambda g, i, j: _num(g.forgetting[i, j])) + "\n"
        text += "Fraction with a first instability:\n\n"
        text += _grid_table(g, lambda g, i, j: _num(g.unstable[i, j], 2)) + "\n"
        text += "Fraction of runs settled (|drift|, |settle| < 0.03):\n\n"
        text += _grid_table(g, lambda g, i, j: _num(g.settled[i, j], 2)) + "\n"
        text += _verdict(g) + "\n"
    return text


def _grid_table(g: xr.Dataset, cell) -> str:
    """A table with a row per amplitude and a column per period, `cell(g, i, j)` in each."""
    A, T = g.amplitude.values, g.period.values
    rows = [[f"{a:g}"] + [cell(g, i, j) for j in range(len(T))] for i, a in enumerate(A)]
    return table(["A \\ T"] + [f"{int(t)}" for t in T], rows)


def _gain(g: xr.Dataset, i: int, j: int) -> str:
    v, e = float(g.gain[i, j]), float(g.gain_sem[i, j])
    if not math.isfinite(v):
        return "—"
    s = f"{v:+.3f} ± {e:.3f}"
    return f"**{s}**" if bool(g.significant[i, j]) else s


def _num(v, digits: int = 3) -> str:
    v = float(v)
    return "—" if not math.isfinite(v) else f"{v:.{digits}f}"


def _verdict(g: xr.Dataset) -> str:
    """Where the gain is significantly positive or negative, and how it goes with the
    instabilities and the forgetting across the cells (Spearman's rank correlation)."""
    from landscape.machine.extras import require

    spearmanr = require("scipy.stats", "plot", "the phase report's rank correlations").spearmanr

    sig, gain = g.significant.values, g.gain.values
    cell = lambda m: ", ".join(  # noqa: E731
        f"(A {float(g.amplitude[i]):g}, T {int(g.period[j])})" for i, j in zip(*np.nonzero(m))
    )
    up, down = sig & (gain > 0), sig & (gain < 0)
    text = f"- Better than the static loss in {int(up.sum())} of {int(np.isfinite(gain).sum())} cells"
    text += f": {cell(up)}\n" if up.any() else "\n"
    text += f"- Worse in {int(down.sum())}" + (f": {cell(down)}\n" if down.any() else "\n")
    ok = np.isfinite(gain)
    for name, label in (("unstable", "the instability fraction"), ("forgetting", "the forgetting")):
        v = g[name].values
        m = ok & np.isfinite(v)
        if m.sum() >= 3 and np.ptp(v[m]) > 0 and np.ptp(gain[m]) > 0:
            rho = float(spearmanr(gain[m], v[m]).statistic)
            text += f"- Gain against {label} over the cells: Spearman ρ = {rho:+.2f}\n"
    return text
