"""Fig. 4: λ_max at the first instability against η for DCE, DMSE1 and DMSE2 — it follows
2/η. The instability is read from the iterates (`landscape.dynamics.detector`), λ at the onset
from exact replay at t and t + 1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from landscape.config.sweep import SweepSpec

from .common import TINY, check_size, fmt, open_summary, table, write_summary

ETAS = {"dce": (0.5, 0.7, 1.0, 1.4), "dmse1": (0.2, 0.3, 0.4), "dmse2": (0.12, 0.2, 0.3)}
AMPLITUDES = (25.0, 50.0, 75.0)
PERIODS = (5000, 10000)
SEEDS = 30
STEPS_PER_ETA = 100000  # each run at most 100 000/η steps
# `--scaled`: 10 seeds, each batch stopped at its first instabilities and capped at 20 000 steps
SCALED_SEEDS = 10
SCALED_STEPS = 20000
# first instabilities came within 5000 steps (docs/RESULTS.md): with the early stop a run
# takes about this many steps
EARLY_STEPS = 6200
LEGACY = "fig4_summary.zarr"  # one summary of all losses (the scaled results committed before the parts)

__all__ = ["specs", "summarize", "report", "summary_names", "run_steps"]


def specs(size: str) -> dict[str, SweepSpec]:
    """The sweeps of this figure at a size, by name: one per loss (each summarised as a part)."""
    check_size(size)
    out = {}
    for loss, etas in ETAS.items():
        base = SweepSpec().replace(losses=(loss,), etas=etas, widths=(100,))
        grid = dict(amplitudes=AMPLITUDES, periods=PERIODS, until="first-instability", step="fused", eval_every=25)
        out[f"fig4_{loss}"] = {
            "full": base.replace(seeds=tuple(range(SEEDS)), steps_per_eta=STEPS_PER_ETA, **grid),
            "scaled": base.replace(seeds=tuple(range(SCALED_SEEDS)), steps=SCALED_STEPS, hessian_every=250, **grid),
            "quick": base.replace(amplitudes=(50.0,), periods=(5000,), seeds=(0, 1, 2), steps=5000),
            "tiny": base.replace(
                etas=(etas[-1],), widths=(8,), amplitudes=(5.0,), periods=(100,), seeds=(0,), steps=200, **TINY
            ),
        }[size]
        if size == "tiny":
            break
    return out


def run_steps(early: bool = False) -> int:
    """Run-steps of the full sweep (all three losses), or with the early stop."""
    runs = len(AMPLITUDES) * len(PERIODS) * SEEDS
    total = 0
    for etas in ETAS.values():
        for eta in etas:
            steps = -(-STEPS_PER_ETA // eta)
            total += runs * int(min(steps, EARLY_STEPS) if early else steps)
    return total


def summary_names(wanted, out: Path | None = None) -> list[str]:
    """One summary per loss (a part, committed as it finishes); the one summary of all
    losses where an older result directory holds that instead."""
    parts = [f"{name}_summary.zarr" for name in wanted]
    if out is not None and (Path(out) / LEGACY).exists() and not all((Path(out) / p).exists() for p in parts):
        return [LEGACY]
    return parts


def summarize(stores, out: Path) -> None:
    """Per sweep (loss): the first instability of every run and their mean ± s.e. per
    condition, in one part `<sweep>_summary.zarr` (conditions, and the runs as `run_*`)."""
    from landscape.analysis.first_instability import first_instabilities
    from landscape.analysis.first_instability import summarize as by_condition

    for name, paths in stores.items():
        runs = first_instabilities(paths)
        summ = by_condition(runs)
        keep = ["loss_name", "eta", "amplitude", "period", "seed", "first_instability", "unstable_from_start",
                "diverged", "steps"]  # fmt: skip
        per_run = runs[[k for k in keep if k in runs]].rename({k: f"run_{k}" for k in keep if k in runs})
        write_summary(xr.merge([summ, per_run], combine_attrs="override"), out / f"{name}_summary.zarr")


def merged(out: Path, wanted) -> xr.Dataset:
    """The parts of `out` as one summary (conditions and runs concatenated)."""
    parts = [open_summary(Path(out) / n) for n in summary_names(wanted, out)]
    if len(parts) == 1:
        return parts[0]
    cond = xr.concat([p.drop_dims("run", errors="ignore") for p in parts], dim="condition", combine_attrs="override")
    if all("run" in p.dims for p in parts):
        runs = xr.concat([p[[v for v in p.data_vars if "run" in p[v].dims]] for p in parts], dim="run")
        cond = xr.merge([cond, runs.assign_coords(run=np.arange(runs.sizes["run"]))], combine_attrs="override")
    return cond


def unfinished(summ: xr.Dataset) -> str:
    """The runs without a first instability (neither unstable from the start nor diverged), with
    how long they ran: where the parts keep their runs."""
    if "run_first_instability" not in summ:
        return ""
    none = ~np.isfinite(summ.run_first_instability.values.astype(float))
    none &= ~summ.run_unstable_from_start.values.astype(bool) & ~summ.run_diverged.values.astype(bool)
    head = f"\nRuns with no first instability: {int(none.sum())} of {summ.sizes['run']}"
    if not none.any():
        return head + ".\n"
    rows = [
        (str(summ.run_loss_name.values[i]).upper(), f"{float(summ.run_eta.values[i]):g}",
         f"{float(summ.run_amplitude.values[i]):g}", int(summ.run_period.values[i]), int(summ.run_seed.values[i]),
         f"{int(summ.run_steps.values[i]):,}" if "run_steps" in summ else "—")
        for i in np.flatnonzero(none)
    ]  # fmt: skip
    return head + " (each ran to the length given):\n\n" + table(["loss", "η", "A", "T", "seed", "steps run"], rows)


def report(out: Path, wanted) -> str:
    """Figure and report text from the summaries in `out` (the parts merged)."""
    from landscape.analysis.figures import draw_fig4
    from landscape.analysis.first_instability import per_loss

    summ = merged(out, wanted)
    draw_fig4(summ, out / "fig4.png")
    f = fmt
    rows = []
    for i in range(summ.sizes["condition"]):
        s = summ.isel(condition=i)
        rows.append(
            (
                str(s.loss_name.values).upper(),
                f"{float(s.eta):g}",
                f"{float(s.amplitude):g}",
                int(s.period),
                f"{int(s.n_unstable)}/{int(s.n_runs)}",
                int(s.n_from_start),
                int(s.n_diverged) if "n_diverged" in s else 0,
                f"{f(s.lambda1_mean)} ± {f(s.lambda1_sem)}",
                f(s.spread_mean),
                f"{float(s.two_over_eta):.3g}",
                f"{f(s.ratio_mean)} ± {f(s.ratio_sem)}",
            )
        )
    pl = per_loss(summ)
    lrows = [
        (
            str(pl.loss_name.values[i]).upper(),
            f"{int(pl.n_conditions[i])}",
            int(pl.n_unstable[i]),
            f(pl.ratio_mean[i]),
            f(pl.ratio_std[i]),
            f"{f(pl.ratio_min[i])} – {f(pl.ratio_max[i])}",
        )
        for i in range(pl.sizes["loss_name"])
    ]
    ok = np.isfinite(summ.ratio_mean.values)
    verdict = (
        f"Measured: λ1 / (2/η) between {np.nanmin(summ.ratio_mean.values):.2f} and "
        f"{np.nanmax(summ.ratio_mean.values):.2f} over {int(ok.sum())} conditions with an instability."
        if ok.any()
        else "Measured: no instability was detected in these runs."
    )
    text = (
        "Paper: λ_max at the first instability follows 2/η for DCE, DMSE1 and DMSE2 (edge of stability); "
        "the instability is read from the dynamics, never from λ_max.\n\n![fig4](fig4.png)\n\n"
        + verdict
        + "\n\n"
        + table(
            [
                "loss",
                "conditions with an instability",
                "unstable runs",
                "mean λ1/(2/η)",
                "s.d. over conditions",
                "range",
            ],
            lrows,
        )
        + "\n"
        "λ1 at the first instability is the mean of its two branches, λ1(θ_t) and λ1(θ_{t+1}) at the onset t "
        "(replayed, exact); 'branch spread' is their mean difference; runs unstable from their first steps have "
        "no first instability and are counted apart, as are runs that diverged (values NaN from some step on).\n\n"
        + table(
            [
                "loss",
                "η",
                "A",
                "T",
                "unstable/runs",
                "unstable at start",
                "diverged",
                "λ1 at first instability (branch mean)",
                "branch spread",
                "2/η",
                "λ1 / (2/η)",
            ],
            rows,
        )
    )
    return text + unfinished(summ)
