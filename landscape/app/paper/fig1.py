"""Fig. 1: static CE at widths 10/30/100 and η 0.5/1 — λ_max rises to 2/η (the edge of
stability), wider networks escape from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landscape.config.sweep import SweepSpec

from .common import TINY, check_size, open_summary, span, summary_names, table, write_summary

WIDTHS = (10, 30, 100)
ETAS = (0.5, 1.0)
SEEDS = 20  # the paper's
# `--full`: long enough for the widest network's escape from the edge of stability to show
# (the scaled runs: width 100 leaves 2/η within 200 000 steps)
STEPS = 200000
# `--scaled`: the paper's grid with what a 2-core CPU runs in hours, and the widest network
# again, long enough to see whether it leaves the edge of stability
SCALED_SEEDS = 8
SCALED_STEPS = 50000
SCALED_LONG_STEPS = 200000

__all__ = ["specs", "summarize", "report", "summary_names"]


def specs(size: str) -> dict[str, SweepSpec]:
    """The sweeps of this figure at a size, by name."""
    check_size(size)
    base = SweepSpec().replace(losses=("ce",), etas=ETAS, amplitudes=(1.0,), periods=(5000,), widths=WIDTHS)
    out = {
        "fig1": {
            "full": base.replace(
                seeds=tuple(range(SEEDS)),
                steps=STEPS,
                hessian_every=500,
                save_params_every=10000,
                step="fused",
                eval_every=100,
            ),
            "scaled": base.replace(seeds=tuple(range(SCALED_SEEDS)), steps=SCALED_STEPS, hessian_every=100),
            "quick": base.replace(seeds=(0, 1, 2), steps=4000, hessian_every=50),
            "tiny": base.replace(widths=(4, 8), seeds=(0, 1), steps=100, **TINY),
        }[size]
    }
    if size == "scaled":
        out["fig1_long"] = base.replace(
            widths=(WIDTHS[-1],),
            seeds=tuple(range(SCALED_SEEDS)),
            steps=SCALED_LONG_STEPS,
            hessian_every=500,
            save_params_every=10000,
        )
    return out


def summarize(stores, out: Path) -> None:
    """One edge-of-stability summary per sweep (mean curves and per-run escape)."""
    from landscape.analysis.edge_of_stability import summarize as eos_summary

    for name, paths in stores.items():
        write_summary(eos_summary(paths), out / f"{name}_summary.zarr")


def report(out: Path, wanted) -> str:
    """Figure and report text from the summaries in `out`."""
    from landscape.analysis.edge_of_stability import draw

    text = (
        "Paper: with static CE, λ_max rises quickly to about 2/η (edge of stability) and the loss "
        "shows spikes; larger widths escape to wider valleys; both larger widths and larger η train "
        "better.\n\n"
    )
    for name in wanted:
        summ = open_summary(out / f"{name}_summary.zarr")
        draw(summ, out / f"{name}.png")
        rows = []
        nh = summ.sizes["hstep"]
        per_run = "run_train_acc" in summ  # summaries from before 0.3 keep only the means
        for c in range(summ.sizes["curve"]):
            s = summ.isel(curve=c)
            ratio = s.ratio_mean.values
            row = [
                int(s.width),
                f"{float(s.eta):g}",
                int(s.n_runs),
                f"{float(s.loss_mean[-1]):.4f}",
                f"{float(s.final_train_acc):.3f}",
                f"{np.nanmax(ratio):.2f}",
                f"{np.nanmean(ratio[nh // 2 :]):.2f}",
                f"{np.nanmean(ratio[-max(1, nh // 10) :]):.2f}",
                f"{int(s.n_escaped)}/{int(s.n_runs)}",
            ]
            if per_run:
                mine = summ.run_curve.values == c
                learned = mine & (summ.run_train_acc.values >= LEARNED)
                tails = summ.run_tail_ratio.values
                row += [
                    f"{int(learned.sum())}/{int(mine.sum())}",
                    span(tails[learned]),
                    span(tails[mine & ~learned]),
                ]
            rows.append(row)
        st = summ.step.values  # summaries from before 0.3 do not keep the length: every `every` steps
        steps = int(summ.attrs.get("steps", st[-1] + (st[1] - st[0] if len(st) > 1 else 1)))
        text += (
            f"## {name}: {steps:,} steps\n\n![{name}]({name}.png)\n\nλ_max / (2/η) is the mean over runs; a run "
            f"*escaped* when, after reaching {summ.attrs['escape_reach']:g}, its ratio stayed below "
            f"{summ.attrs['escape_level']:g} over the last {summ.attrs['escape_tail']:.0%} of the run.\n\n"
            + table(
                [
                    "width",
                    "η",
                    "runs",
                    "final F (mean)",
                    "final train acc",
                    "max of mean λ_max/(2/η)",
                    "2nd half",
                    "last 10 %",
                    "escaped",
                ]
                + (
                    [
                        f"runs with train acc ≥ {LEARNED:g}",
                        "their λ_max/(2/η), last 10 %",
                        "the others', last 10 %",
                    ]
                    if per_run
                    else []
                ),
                rows,
            )
            + "\n"
        )
    return text


LEARNED = 0.95  # a run that has learned the training set (Fig. 1's escape goes with it)
