"""Memory estimates made before anything large is allocated, and the refusal when they exceed
what the machine has: a recording, the engine's working set, a slice grid.

The estimates count the arrays that scale with the inputs (replicas, width, steps, data
points, classes, grid); they are upper bounds within a small factor, not exact.
"""

from __future__ import annotations

import os
from pathlib import Path

from landscape import LandscapeError
from landscape.machine import cgroup

OVERRIDE = "LANDSCAPE_MAX_MEMORY"


def budget_override() -> int | None:
    """`LANDSCAPE_MAX_MEMORY` in bytes (a number, or with a K/M/G/T suffix), None when unset."""
    raw = os.environ.get(OVERRIDE, "").strip()
    if not raw:
        return None
    mult = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}.get(raw[-1].upper(), 1)
    try:
        value = float(raw[:-1] if mult > 1 else raw) * mult
    except ValueError:
        raise LandscapeError(f"{OVERRIDE}={raw!r}: expected bytes, or a number with K, M, G or T") from None
    if not value > 0:
        raise LandscapeError(f"{OVERRIDE}={raw!r}: must be > 0")
    return int(value)


def available(device: str = "cpu") -> int | None:
    """Bytes the estimates are held against: `LANDSCAPE_MAX_MEMORY` where it is set (it replaces
    the measurement, so it can raise the limit where an estimate is too cautious as well as lower
    it), else MemAvailable (Linux, and the cgroup's room) or the GPU's free memory; None if unknown."""
    limit = budget_override()
    if limit is not None:
        return limit
    have = None
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            have = int(torch.cuda.mem_get_info(torch.device(device))[0])
    else:
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    have = int(line.split()[1]) * 1024
        except OSError:
            pass
        room = cgroup_room()  # a container or batch job is killed at its own limit, not the machine's
        if room is not None:
            have = room if have is None else min(have, room)
    return have


NO_LIMIT = 2**60  # cgroup v1 writes "no limit" as a page-rounded 2**63


def cgroup_room(root: Path = cgroup.ROOT, lines: list[str] | None = None) -> int | None:
    """Bytes this process's cgroup may still allocate: the tightest limit of it and its parents
    less their usage (v2 memory.max − memory.current, v1 memory.limit_in_bytes −
    memory.usage_in_bytes); None where no limit is set or cgroups are not readable."""
    best: int | None = None
    for d, v2 in cgroup.folders("memory", root, lines):
        limit, usage = ("memory.max", "memory.current") if v2 else ("memory.limit_in_bytes", "memory.usage_in_bytes")
        try:
            mx = (d / limit).read_text().strip()
            cur = int((d / usage).read_text().strip())
        except (OSError, ValueError):
            continue
        if mx != "max" and int(mx) < NO_LIMIT:
            room = max(0, int(mx) - cur)
            best = room if best is None else min(best, room)
    return best


def fmt(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{n / 1e3:,.0f} kB"


def require(need: int, what: str, device: str = "cpu"):
    """Raise LandscapeError if `need` bytes exceed what is available."""
    have = available(device)
    if have is not None and need > have:
        given = budget_override() is not None
        raise LandscapeError(
            f"{what} needs about {fmt(need)} of memory, more than the {fmt(have)} "
            + (f"{OVERRIDE} allows" if given else f"available on {device}")
            + f"; reduce it, or set {OVERRIDE} (e.g. {OVERRIDE}=64G) to the memory it may use if this "
            "estimate is wrong"
        )


def num_params(width: int, depth: int, input_dim: int, num_classes: int) -> int:
    return (input_dim * width + width) + (depth - 1) * (width**2 + width) + width * num_classes + num_classes


def bytes_per_replica(cfg, input_dim=2, num_classes=3, points=300) -> int:
    """Working memory of one replica in the engine that will run it (`cfg.step`): the eager and
    compiled steps hold the training and validation passes' activations and the HVP cache
    (points × width per layer, a dozen arrays); the fused kernel keeps a block of points'
    activations in cache from the forward pass to the gradient and holds only the logits per
    point. Both add the Lanczos basis (Q and H Q) and a few parameter-sized vectors. With `--chunk` the
    activations are one chunk's (the logits stay whole). Measured against the peak in
    tests/landscape/machine/test_memory.py (within 2× across width, points, replicas, chunks)."""
    size = 8 if cfg.dtype == "float64" else 4
    n = num_params(cfg.width, cfg.depth, input_dim, num_classes)
    if cfg.step == "fused":
        acts = 4 * points * num_classes
    else:
        held = min(points, cfg.chunk) if cfg.chunk else points
        acts = 16 * held * cfg.width * cfg.depth + (8 * points * num_classes if cfg.chunk else 0)
    lanczos = 2 * cfg.eig_max_iter * n  # the Krylov basis Q and its products H Q
    return size * (acts + lanczos + 8 * n)


# what a recording process holds beyond its replicas' working sets (the store's writers, the
# step's thread pool and libraries, the allocator's slack): 60–110 MB measured
OVERHEAD = 60 * 10**6


def recording_bytes(cfg, input_dim: int, num_classes: int, points: int, n: int | None = None) -> int:
    """A recording's memory: engine working set, per-chunk buffers, step axes, labels, and the
    loss history of `--until first-instability` (n: the parameter count of a user's model)."""
    R = len(cfg.replicas())
    n = num_params(cfg.width, cfg.depth, input_dim, num_classes) if n is None else n
    chunk = min(cfg.chunk_steps, cfg.steps)
    k = cfg.top_k + cfg.eig_oversample
    buffers = R * (chunk * 4 + 3 * chunk * k + (chunk // cfg.save_params_every + 1) * n * (1 + k)) * 8
    axes = 3 * cfg.steps * 8
    labels = 2 * points * num_classes * 8
    history = R * cfg.steps * 8 if cfg.until == "first-instability" else 0
    per = (
        bytes_per_replica(cfg, input_dim, num_classes, points) if not cfg.model else 8 * n * (2 * cfg.eig_max_iter + 8)
    )
    return OVERHEAD + R * per + buffers + axes + labels + history


def require_recording(
    cfg, input_dim: int | None = None, num_classes: int | None = None, points: int | None = None, n: int | None = None
):
    """Refuse a recording that cannot fit (before the data, the engine or the store exist).
    Without data dimensions, the spiral's are used."""
    if input_dim is not None and num_classes is not None and points is not None:
        dims = (input_dim, num_classes, points)
    else:
        dims = (2, 3, 3 * int(cfg.n_per_class))
    require(recording_bytes(cfg, *dims, n=n), "this recording", cfg.device)
