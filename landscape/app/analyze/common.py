"""The `analyze` and `plot` groups and what their commands share: where results and figures
go (checked before any work) and how summaries print."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from landscape import LandscapeError

from ..options import user_errors


@click.group()
def analyze():
    """Analyse recorded stores (read-only; results go to a group of the store or --out)."""


@click.group()
def plot():
    """Draw the paper's figures from recorded stores (PNG and PDF)."""


def summary_out(out) -> None:
    """An output store of summaries: never a recorded run, writable, checked before the work."""
    if not out:
        return
    from landscape.analysis.io import check_target
    from landscape.store.run import is_store

    if is_store(out):
        raise LandscapeError(f"--out {out} is a recorded run; choose a separate output store")
    check_target(out, out)


def save_pair(out, name, runs, summary) -> str:
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


def instability_columns(summary) -> list:
    """The instability table's columns: with another optimizer than gd, its name, and its
    threshold (`edge`) in place of 2/η."""
    if "optimizer" not in summary.coords:
        return CONDITION + INSTABILITY_COLUMNS
    edge = {"2/η": ("edge", 7, "threshold", ".3g"), "λ1/(2/η)": ("λ1/edge", 9, "ratio_mean", ".3f")}
    return [("optimizer", 14, "optimizer", "s"), *CONDITION] + [edge.get(c[0], c) for c in INSTABILITY_COLUMNS]


def summary_command(default_fig: str):
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


def print_summary(summ, columns):
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


def fmt(v, nd=0):
    return "—" if v is None or not np.isfinite(v) else (f"{v:.{nd}f}" if nd else f"{int(v)}")


def beside(store: str, out: str | None, what: str) -> str:
    """The default figure path: `<store name>_<what>` next to the result it draws (the output
    store, else the run store), not in the current directory."""
    return str(Path(out or store.rstrip("/")).parent / f"{Path(store.rstrip('/')).stem}_{what}")


def fig_dir(fig, flag: str) -> None:
    """Refuse a figure path whose folder does not exist, before any work is done."""
    if not Path(fig).parent.is_dir():
        raise LandscapeError(f"{flag} {fig}: directory {Path(fig).parent} does not exist")
