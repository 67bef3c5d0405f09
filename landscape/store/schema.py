"""Which layout a store was written with, and how an older one reads as the current one.

A store carries `landscape_schema` in its root attributes. The current version writes every
fact a reader needs as an attribute; an older version is read through its migration, which
says once, in one place, what that version lacked and what it means (the one place that looks
at an array's shape to learn a fact). Every reader takes the facts from `Schema`, as xarray
opens every file through one backend entry point.

Versions:
  1  landscape 0.1–0.3. 0.1 stores have no `param_map` (the built-in MLP), no `data_digest`;
     stores before 0.3 have no iterate signals (`iterate_signals` absent: 0 directions);
     stores before the guard vectors hold only the top-k warm-start vectors in their resume
     slots (read from the width of `state/ckpt`).
  2  the number of warm-start vectors per replica in the resume slots is an attribute
     (`ckpt_vectors`), and every optional attribute is written (empty where unused).
  3  the optimizer: each replica's stability threshold `edge` is a coordinate, and an optimizer
     with state (momentum, Adam, …) saves it beside θ (`opt_<buffer>`, and in the resume slots
     between θ and the warm-start vectors). Versions 1 and 2 trained with gradient descent
     only: no state, and the threshold 2/η (`edge_coordinate` false: readers compute it).

>>> from landscape.store.schema import read
>>> s = read({"landscape_schema": 1, "num_params": 603}, ckpt_width=1 + 603 * 3, top_k=2)
>>> s.version, s.iterates, s.ckpt_vectors, s.data_digest
(1, 0, 2, '')
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from landscape import LandscapeError, __version__

SCHEMA_VERSION = 3


@dataclass(frozen=True)
class Schema:
    """What a reader needs to know of a store, whatever version wrote it."""

    version: int  # as written
    iterates: int  # projection directions of the iterate signals (0: recorded without them)
    ckpt_vectors: int  # warm-start vectors per replica in each resume slot
    data_digest: str  # SHA-256 of the data ("" where the store did not record it)
    param_map: tuple  # ((name, shape), …) in θ's order (empty: the built-in MLP of an old store)
    layers: tuple[str, ...]  # the layers of the per-layer spectra
    edge: bool = True  # the store holds each replica's stability threshold `edge` (else it is 2/η)


def attributes(iterates: int, ckpt_vectors: int, data_digest: str, param_map, layers) -> dict:
    """The schema's facts as a new store writes them."""
    return {
        "landscape_schema": SCHEMA_VERSION,
        "iterate_signals": int(iterates),
        "ckpt_vectors": int(ckpt_vectors),
        "data_digest": str(data_digest),
        "param_map": [[str(nm), [int(d) for d in shape]] for nm, shape in param_map],
        "layers": [str(v) for v in layers],
        "edge_coordinate": True,
    }


def _from_1(attrs: dict, ckpt_width: int | None, top_k: int) -> dict:
    """Version 1 → 2: the attributes it could lack, and the resume slots' vector count."""
    out = dict(attrs)
    out.setdefault("iterate_signals", 0)
    out.setdefault("data_digest", "")
    out.setdefault("param_map", [])
    out.setdefault("layers", [])
    n = attrs.get("num_params")
    j = top_k
    if ckpt_width is not None and isinstance(n, int) and n > 0:
        per = (ckpt_width - 1) / n - 1  # [step, θ (n), vectors (j × n)] per replica
        j = int(per) if per == int(per) and per >= top_k else top_k
    out["ckpt_vectors"] = j
    out["landscape_schema"] = 2
    return out


def _from_2(attrs: dict, ckpt_width: int | None, top_k: int) -> dict:
    """Version 2 → 3: gradient descent only, so no optimizer state and no stored threshold."""
    out = dict(attrs)
    out["edge_coordinate"] = False
    out["landscape_schema"] = 3
    return out


MIGRATIONS: dict[int, Callable[[dict, int | None, int], dict]] = {1: _from_1, 2: _from_2}


def read(attrs: Mapping, ckpt_width: int | None = None, top_k: int = 2, where="store") -> Schema:
    """The schema of a store's root attributes, older versions migrated one step at a time.
    `ckpt_width`: the last dimension of `state/ckpt` (what version 1 needs to know its slots)."""
    attrs = dict(attrs)
    v = attrs.get("landscape_schema")
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise LandscapeError(f"{where} is damaged: landscape_schema = {v!r} is not a schema version")
    if v > SCHEMA_VERSION:
        raise LandscapeError(
            f"{where} was written with store schema {v}, newer than this landscape's {SCHEMA_VERSION} "
            f"({__version__}); upgrade landscape to read it"
        )
    written = v
    while v < SCHEMA_VERSION:
        attrs = MIGRATIONS[v](attrs, ckpt_width, top_k)
        v = attrs["landscape_schema"]
    it, j = attrs.get("iterate_signals"), attrs.get("ckpt_vectors")
    if isinstance(it, bool) or not isinstance(it, int) or it < 0:
        raise LandscapeError(f"{where} is damaged: iterate_signals = {it!r} is not a count")
    if isinstance(j, bool) or not isinstance(j, int) or j < 1:
        raise LandscapeError(f"{where} is damaged: ckpt_vectors = {j!r} is not a count")
    layers = attrs.get("layers") or []
    if not isinstance(layers, list):
        raise LandscapeError(f"{where} is damaged: attribute layers is not a list")
    try:
        pm = tuple((str(name), tuple(int(d) for d in shape)) for name, shape in attrs.get("param_map") or [])
    except (TypeError, ValueError):
        raise LandscapeError(f"{where} is damaged: attribute param_map is not a list of [name, shape]") from None
    return Schema(
        version=written,
        iterates=it,
        ckpt_vectors=j,
        data_digest=str(attrs.get("data_digest") or ""),
        param_map=pm,
        layers=tuple(str(x) for x in layers),
        edge=bool(attrs.get("edge_coordinate", True)),
    )
