"""How many CPUs this process may use: what a worker pool should be sized by.

`os.cpu_count()` counts the machine's cores. A batch job (SLURM `--cpus-per-task`, `taskset`)
or a container may give the process fewer: through its CPU affinity, or a cgroup CPU quota
(quota / period cores of time). Workers sized by the machine then oversubscribe the cores
they have and run several times slower (bench/bench_threads.py; docs/performance.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from landscape.machine import cgroup


def _quota(root: Path = cgroup.ROOT, lines: list[str] | None = None) -> float | None:
    """Cores of CPU time the process's cgroup allows (v2 cpu.max, v1 cpu.cfs_quota_us /
    cpu.cfs_period_us), the tightest over it and its parents; None where unlimited. `lines`:
    /proc/self/cgroup's (read when None)."""
    best: float | None = None
    for d, v2 in cgroup.folders("cpu", root, lines):
        try:
            if v2:
                q, p = (d / "cpu.max").read_text().split()
            else:
                q, p = (d / "cpu.cfs_quota_us").read_text(), (d / "cpu.cfs_period_us").read_text()
            if q.strip() not in ("max", "-1"):
                cores = int(q) / int(p)
                best = cores if best is None else min(best, cores)
        except (OSError, ValueError, ZeroDivisionError):
            pass
    return best


def usable_cpus(root: Path = cgroup.ROOT, lines: list[str] | None = None) -> int:
    """The CPUs this process may run on (its affinity), capped by its cgroup's CPU quota
    (rounded up: a quota of 1.5 cores keeps two threads busy part of the time); at least 1."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    q = _quota(root, lines)
    if q is not None:
        n = min(n, max(1, math.ceil(q)))
    return max(1, n)
