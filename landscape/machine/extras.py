"""Optional dependencies: imported where a command needs them, named in a one-line error when
they are missing (recording needs none of them)."""

from __future__ import annotations

import importlib
from types import ModuleType

from landscape import LandscapeError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import `module`, or raise LandscapeError naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise LandscapeError(
            f"{purpose} needs {top}, which is not installed: pip install 'landscape[{extra}]'"
        ) from None
