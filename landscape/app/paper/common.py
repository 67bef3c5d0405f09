"""What the figure modules share: the sizes, the tiny settings, and the report's helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landscape import LandscapeError

SIZES = ("full", "scaled", "quick", "tiny")
TINY = dict(n_per_class=10, hessian_every=10, save_params_every=50, chunk_steps=50)


def check_size(size: str) -> None:
    if size not in SIZES:
        raise LandscapeError(f"size must be one of {', '.join(SIZES)}")


def summary_names(wanted, out=None) -> list[str]:
    """One summary store per sweep: `<sweep>_summary.zarr`."""
    return [f"{name}_summary.zarr" for name in wanted]


def open_summary(path):
    """A summary store, loaded; refused where it was cut off while written."""
    from landscape.store import results

    return results.open_complete(path)


def write_summary(ds, path: Path) -> None:
    """Write a summary store, marked complete once whole (`landscape.store.results`)."""
    from landscape.store import results

    results.write(ds, path)


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def span(x) -> str:
    """min–max of x ('—' when empty)."""
    x = np.asarray(x, float)
    return "—" if x.size == 0 else (f"{x.min():.2f}" if x.size == 1 else f"{x.min():.2f}–{x.max():.2f}")


def fmt(v) -> str:
    return "—" if not np.isfinite(v) else f"{float(v):.3f}"
