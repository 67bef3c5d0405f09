"""The CPUs a process may use: its affinity and its cgroup's CPU quota (fake cgroup trees)."""

import math
import os
import subprocess
import sys

import pytest

from landscape.machine.cpus import _quota, usable_cpus


def test_affinity_is_what_counts():
    """A process pinned to one core (taskset, SLURM --cpus-per-task=1) gets 1, whatever the machine has."""
    code = (
        "import os; os.sched_setaffinity(0, {0}); from landscape.machine.cpus import usable_cpus; print(usable_cpus())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    "v2, files, cores",
    [
        (True, {"job/cpu.max": "150000 100000"}, 1.5),
        (True, {"cpu.max": "100000 100000", "job/cpu.max": "max 100000"}, 1.0),  # the parent's is tighter
        (True, {"job/cpu.max": "max 100000"}, None),
        (False, {"cpu/job/cpu.cfs_quota_us": "50000", "cpu/job/cpu.cfs_period_us": "100000"}, 0.5),
        (False, {"cpu/job/cpu.cfs_quota_us": "-1", "cpu/job/cpu.cfs_period_us": "100000"}, None),
    ],
)
def test_cgroup_quota(tmp_path, v2, files, cores):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    lines = ["0::/job"] if v2 else ["3:cpu:/job", "2:memory:/job"]
    assert _quota(tmp_path, lines) == cores
    have = len(os.sched_getaffinity(0))
    assert usable_cpus(tmp_path, lines) == (have if cores is None else min(have, max(1, math.ceil(cores))))
