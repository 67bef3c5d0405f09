"""Fig. 3: validation accuracy against width — (a) CE vs DCE at η = 1, (b) MSE vs DMSE1 vs
DMSE2 at η = 0.075; A = 70, T = 5000, the last period static."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from landscape.config.sweep import SweepSpec

from .common import TINY, check_size, open_summary, summary_names, table, write_summary

SEEDS_A, SEEDS_B = 50, 10  # the paper's
# `--full`: the paper's seeds; widths from the smallest to where CE's mean reaches 0.9 and MSE
# first passes 0.6 (400; at 1000 every loss collapses at η = 0.075, docs/results/paper/full/fig3);
# long enough that the runs have stopped changing (`late_change`): DMSE1 still climbed at
# 300 000 steps and four conditions at 1 000 000, so panel (b) runs 3 000 000, one part per loss
# (each committed as it finishes; docs/results/paper/full/fig3 keeps the shorter panels)
WIDTHS_A = (5, 10, 20, 50, 100, 200, 400)
WIDTHS_B = (5, 10, 20, 50, 100, 200, 400)
STEPS_A, STEPS_B = 100000, 3000000
PARTS_B = ("dmse1", "dmse2", "mse")  # the slowest to converge first
FAST = dict(step="fused", eval_every=100, save_params_every=10000)  # validation at the last step too
# `--scaled`: long enough that training accuracy has stopped changing at the widths that learn;
# panel (b) again at its widest nets, three times as long (η = 0.075 moves slowly)
SCALED_WIDTHS = (5, 10, 20, 50, 100, 200)
SCALED_STEPS = 100000
SCALED_SEEDS_A, SCALED_SEEDS_B = 16, 8
SCALED_B_LONG_WIDTHS = (100, 200)
SCALED_B_LONG_STEPS = 300000

__all__ = ["specs", "summarize", "report", "summary_names"]


def specs(size: str) -> dict[str, SweepSpec]:
    """The sweeps of this figure at a size, by name."""
    check_size(size)
    a = SweepSpec().replace(
        losses=("ce", "dce"),
        etas=(1.0,),
        amplitudes=(70.0,),
        periods=(5000,),
        static_last=True,
        hessian_every=1000,
        save_params_every=1000,
    )
    b = a.replace(losses=("mse", "dmse1", "dmse2"), etas=(0.075,))
    if size == "full":
        full = {"fig3a": a.replace(widths=WIDTHS_A, seeds=tuple(range(SEEDS_A)), steps=STEPS_A, **FAST)}
        for loss in PARTS_B:
            full[f"fig3b_{loss}"] = b.replace(
                losses=(loss,), widths=WIDTHS_B, seeds=tuple(range(SEEDS_B)), steps=STEPS_B, **FAST
            )
        return full
    if size == "scaled":
        long = dict(widths=SCALED_WIDTHS, steps=SCALED_STEPS, save_params_every=10000)
        return {
            "fig3a": a.replace(seeds=tuple(range(SCALED_SEEDS_A)), **long),
            "fig3b": b.replace(seeds=tuple(range(SCALED_SEEDS_B)), **long),
            "fig3b_long": b.replace(
                seeds=tuple(range(SCALED_SEEDS_B)),
                **{**long, "widths": SCALED_B_LONG_WIDTHS, "steps": SCALED_B_LONG_STEPS},
            ),
        }
    if size == "quick":
        return {"fig3a": a.replace(widths=(4, 8, 16, 32), seeds=(0, 1, 2, 3), steps=30000)}
    return {
        "fig3a": a.replace(
            widths=(4, 8),
            seeds=(0, 1),
            periods=(40,),
            steps=120,
            **{**TINY, "hessian_every": 40, "save_params_every": 40, "chunk_steps": 40},
        )
    }


LEVELS = (0.6, 0.75, 0.9)  # validation accuracies whose first width Fig. 3's report gives


def summarize(stores, out: Path) -> None:
    """Final accuracies per run and their mean ± s.e. per (loss, width), one summary per sweep."""
    from landscape.analysis.generalization import final_accuracies
    from landscape.analysis.generalization import summarize as accuracy_summary

    for name, paths in stores.items():
        summ = accuracy_summary(final_accuracies(paths))
        write_summary(summ, out / f"{name}_summary.zarr")


CONVERGED = 0.03  # |change| of the mean training accuracy below which a condition counts as settled


def panels(wanted) -> dict[str, list[str]]:
    """The figure's panels, each with the sweeps it is drawn from (panel (b) at the full size:
    one part per loss)."""
    out: dict[str, list[str]] = {}
    for name in wanted:
        panel = "fig3b" if name.removeprefix("fig3b_") in PARTS_B else name
        out.setdefault(panel, []).append(name)
    return out


def open_panel(out: Path, names) -> xr.Dataset:
    """One summary of a panel: its parts' conditions together, in the order of one sweep's."""
    parts = [open_summary(out / f"{n}_summary.zarr") for n in names]
    if len(parts) == 1:
        return parts[0]
    from landscape.analysis.generalization import KEYS
    from landscape.analysis.io import conditions  # how one sweep's summary orders its conditions

    summ = xr.concat(parts, dim="condition", combine_attrs="override")
    order = [int(np.flatnonzero(m)[0]) for _, m in conditions(summ, KEYS, dim="condition")]
    return summ.isel(condition=order).assign_coords(condition=np.arange(summ.sizes["condition"]))


def convergence(summ: xr.Dataset) -> str:
    """Which conditions had stopped changing (`late_change`): empty for a summary without it."""
    if "train_drift" not in summ:
        return ""
    late = []
    for i in range(summ.sizes["condition"]):
        s = summ.isel(condition=i)
        moved = {
            k: float(s[k])
            for k in ("train_drift", "static_settle")
            if np.isfinite(s[k]) and abs(float(s[k])) >= CONVERGED
        }
        if moved:
            what = ", ".join(f"{k.replace('_', ' ')} {v:+.3f}" for k, v in moved.items())
            late.append(f"{str(s.loss_name.values).upper()} at width {int(s.width)} ({what})")
    n = summ.sizes["condition"]
    text = (
        f"Converged (|drift| and |settle| of the mean training accuracy < {CONVERGED:g}) in "
        f"{n - len(late)} of {n} conditions"
    )
    return text + (": not " + "; ".join(late) if late else "") + ".\n\n"


def report(out: Path, wanted) -> str:
    """Figure and report text from the summaries in `out`."""
    from landscape.analysis.generalization import draw_fig3, width_reaching

    text = (
        "Paper: dynamical losses train smaller networks: they reach high validation accuracy at smaller widths "
        "(they shift the under/over-parameterised transition); accuracy measured after a last period with "
        "A = 1.\n\n"
    )
    for name, names in panels(wanted).items():
        summ = open_panel(out, names)
        level = float(summ.attrs.get("level", 0.9))
        late = "train_drift" in summ  # the period-mean check; older summaries have the plain one
        changes = ("train_drift", "static_gain", "static_settle") if late else ("train_change",)
        draw_fig3(summ, out / f"{name}.png")
        rows, by = [], {}
        for i in range(summ.sizes["condition"]):
            s = summ.isel(condition=i)
            by[(str(s.loss_name.values), int(s.width))] = (float(s.val_mean), float(s.val_sem))
            row = [
                str(s.loss_name.values).upper(),
                int(s.width),
                int(s.n),
                f"{float(s.val_mean):.3f} ± {float(s.val_sem):.3f}",
                f"{float(s.train_mean):.3f} ± {float(s.train_sem):.3f}",
                f"{float(s.val_reached):.2f}",
            ]
            row += [f"{float(s[k]):+.3f}" if k in s and np.isfinite(s[k]) else "—" for k in changes]
            rows.append(row)
        header = ["loss", "width", "runs", "validation acc", "train acc", f"runs with val ≥ {level:g}"]
        header += (
            ["train drift, last fifth (period means)", "static period: gain", "static period: settle"]
            if late
            else ["Δ train acc, last fifth"]
        )
        text += f"![{name}]({name}.png)\n\n" + table(header, rows) + "\n" + convergence(summ)
        levels = sorted({*LEVELS, level})
        reach = {lv: width_reaching(summ, lv) for lv in levels}
        wrows = []
        for g in range(reach[level].sizes["group"]):
            row = [str(reach[level].loss_name.values[g]).upper(), f"{float(reach[level].eta[g]):g}"]
            for lv in levels:
                fw, cw = float(reach[lv].first_width[g]), float(reach[lv].crossing_width[g])
                row.append("—" if not np.isfinite(fw) else f"{fw:g} ({cw:.0f})")
            wrows.append(row)
        text += (
            "Width at which the mean validation accuracy first reaches a level, with the log-width "
            "interpolated crossing in brackets (— : no width does):\n\n"
            + table(["loss", "η"] + [f"val ≥ {lv:g}" for lv in levels], wrows)
            + "\n"
        )
        static, dyn = ("ce", ["dce"]) if "ce" in {k[0] for k in by} else ("mse", ["dmse1", "dmse2"])
        for d in dyn:
            for w in sorted({k[1] for k in by}):
                if (d, w) in by and (static, w) in by:
                    diff = 100 * (by[(d, w)][0] - by[(static, w)][0])
                    err = 100 * np.hypot(by[(d, w)][1], by[(static, w)][1])
                    verdict = "better" if diff > err else ("worse" if diff < -err else "no clear difference")
                    text += (
                        f"- width {w}: validation accuracy {d.upper()} − {static.upper()} = {diff:+.1f} ± "
                        f"{err:.1f} points ({verdict})\n"
                    )
        text += "\n"
    return text
