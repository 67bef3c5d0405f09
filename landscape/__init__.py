"""landscape: record and analyse training under dynamical loss functions.

The core package holds what both the recorders and the analysis need: data,
models, Γ schedules, losses, the batched engine, the Hessian eigensolver and the
store schema.
"""

__version__ = "0.2.0"


class LandscapeError(Exception):
    """A problem with the user's input: reported as one line, never a traceback."""
