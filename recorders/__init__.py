"""Recorders: run training with the core engine and write run stores.

They never import `analysis`; the two meet only through the store.
"""

from .record import record, resume

__all__ = ["record", "resume"]
