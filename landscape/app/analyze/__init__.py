"""`landscape analyze …` and `landscape plot …`: thin click wrappers over `landscape.analysis`,
one module per kind of thing a command reads: `dynamics` (instabilities, the cascade, the
figures' summaries across runs), `curvature` (spectral density), `views` (slices, surfaces,
interpolation, PCA), `figures` (the paper's figures); `common` holds the groups."""

from . import curvature, dynamics, figures, views  # noqa: F401 (each registers its commands)
from .common import analyze, plot

__all__ = ["analyze", "plot"]
