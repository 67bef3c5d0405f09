"""Recorders: run training with the core engine and write run stores.

They never import `analysis`; the two meet only through the store.
"""

from .record import Prepared, prepare, record, resume

__all__ = ["Prepared", "prepare", "record", "resume"]
