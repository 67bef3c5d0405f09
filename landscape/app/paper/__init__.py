"""The paper's figures as a registry: one module per figure, each holding its constants, its
sweeps by size (`specs`), how the recorded stores become small summary stores (`summarize`)
and how the summaries become figure and report (`report`). `landscape reproduce` drives them
all the same way; `--redraw` runs only `report`, from committed summaries.

Sizes: `full` (the paper's run counts and lengths), `scaled` (the paper's grids with the
seeds and lengths a 2-core CPU runs in hours), `quick` (minutes), `tiny` (seconds; tests).
"""

from __future__ import annotations

from types import ModuleType

from landscape import LandscapeError

from . import fig1, fig2, fig3, fig4, phase
from .common import SIZES

FIGURES: dict[str, ModuleType] = {"fig1": fig1, "fig2": fig2, "fig3": fig3, "fig4": fig4, "phase": phase}

__all__ = ["FIGURES", "SIZES", "figure"]


def figure(name: str) -> ModuleType:
    """The module of a figure (one-line error for an unknown one)."""
    if name not in FIGURES:
        raise LandscapeError(f"unknown figure '{name}'; choose {', '.join(FIGURES)}")
    return FIGURES[name]
