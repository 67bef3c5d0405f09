"""The memory preflight against a cgroup's limit (fake cgroup trees, v1 and v2)."""

import pytest

from landscape import LandscapeError
from landscape.machine import memory


@pytest.mark.parametrize(
    "v2, files, room",
    [
        (True, {"job/memory.max": "1000000", "job/memory.current": "400000"}, 600_000),
        (
            True,  # the parent's limit is the tighter one
            {"memory.max": "500000", "memory.current": "450000", "job/memory.max": "max", "job/memory.current": "1"},
            50_000,
        ),
        (True, {"job/memory.max": "max", "job/memory.current": "400000"}, None),
        (
            False,
            {"memory/job/memory.limit_in_bytes": "2000000", "memory/job/memory.usage_in_bytes": "500000"},
            1_500_000,
        ),
        (  # v1's "no limit"
            False,
            {"memory/job/memory.limit_in_bytes": "9223372036854771712", "memory/job/memory.usage_in_bytes": "5"},
            None,
        ),
    ],
)
def test_cgroup_room(tmp_path, v2, files, room):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    lines = ["0::/job"] if v2 else ["4:memory:/job", "1:cpu:/job"]
    assert memory.cgroup_room(tmp_path, lines) == room


def test_the_preflight_refuses_what_the_cgroup_would_kill(monkeypatch):
    """MemAvailable may be large while the container's limit is not: the tighter one counts."""
    monkeypatch.delenv("LANDSCAPE_MAX_MEMORY", raising=False)
    monkeypatch.setattr(memory, "cgroup_room", lambda *a, **k: 10**8)
    assert memory.available() <= 10**8
    with pytest.raises(LandscapeError, match="more than the 100.0 MB available"):
        memory.require(2 * 10**8, "this recording")


PROBE = """
import json, sys, tempfile
from pathlib import Path
from landscape.config.run import RunConfig
from landscape.machine import memory
from landscape.recorders import record
from landscape.runs import build


def status(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024


step, w, npc, R, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cfg = RunConfig(loss="dce", etas=tuple(0.01 * (i + 1) for i in range(R)), width=w, n_per_class=npc, steps=50,
                hessian_every=25, save_params_every=25, chunk_steps=25, step=step, eval_every=25, threads=1,
                chunk=chunk)
data = build.dataset(cfg)
# the peak from here on: reset the high-water mark (a forked child inherits its parent's, and
# getrusage's maxrss survives exec), then read it after the recording
Path("/proc/self/clear_refs").write_text("5")
base = status("VmRSS:")
record(cfg, tempfile.mkdtemp() + "/r.zarr")
print(json.dumps([status("VmHWM:") - base, memory.recording_bytes(cfg, 2, 3, 3 * npc)]))
"""


def peak_and_estimate(step, width, n_per_class, replicas, chunk=0):
    import json
    import subprocess
    import sys

    args = [str(a) for a in (step, width, n_per_class, replicas, chunk)]
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "step, width, n_per_class, replicas, chunk",
    [
        ("fused", 1000, 1000, 8, 0),  # P = 3000
        ("fused", 400, 1000, 16, 0),
        ("fused", 100, 100, 64, 0),
        ("eager", 100, 100, 16, 0),
        ("eager", 400, 1000, 4, 0),
        ("eager", 400, 1000, 4, 250),  # 12 chunks of the 3000 points
    ],
)
@pytest.mark.slow
def test_the_estimate_is_within_twice_the_measured_peak(step, width, n_per_class, replicas, chunk):
    """The pre-flight estimate is the working set of the strategy that will run: the fused
    step holds no points × width activations (the eager count refused 1000 × 3000 × 256 as 76 GB;
    it runs in about 1.4 GB), the eager step does. Peak RSS of a fresh process recording the
    cell, beyond what it held before the recording, against the estimate."""
    peak, estimate = peak_and_estimate(step, width, n_per_class, replicas, chunk)
    assert 0.5 <= estimate / peak <= 2.0, (peak / 1e6, estimate / 1e6)


@pytest.mark.subprocess
@pytest.mark.slow
def test_chunks_bound_the_peak_by_the_chunk_not_the_data():
    """Eager, width 400, 4 replicas: without chunks the peak grows with the points; with 250-point
    chunks it stays near the small run's (the activations are one chunk's)."""
    small = peak_and_estimate("eager", 400, 100, 4, 250)[0]  # 300 points, 2 chunks
    large = peak_and_estimate("eager", 400, 2000, 4, 250)[0]  # 6000 points, 24 chunks
    whole = peak_and_estimate("eager", 400, 2000, 4, 0)[0]
    assert large < 1.6 * small and whole > 3 * large, (small / 1e6, large / 1e6, whole / 1e6)


def test_the_fused_estimate_admits_what_the_eager_one_refused(monkeypatch):
    """The issue's cells: width 1000, 3000 points, 256 replicas; width 1000, 30 000 points, 64."""
    from dataclasses import replace

    from landscape.config.run import RunConfig

    for w, P, R in ((1000, 3000, 256), (1000, 30000, 64)):
        cfg = RunConfig(width=w, etas=tuple(0.001 * (i + 1) for i in range(R)), steps=1000)
        fused = memory.recording_bytes(replace(cfg, step="fused"), 2, 3, P)
        eager = memory.recording_bytes(cfg, 2, 3, P)
        assert fused < 4e9 < 60e9 < eager, (fused / 1e9, eager / 1e9)


@pytest.mark.parametrize("value, expected", [("64G", 64 * 2**30), ("512M", 512 * 2**20), ("1000", 1000)])
def test_the_override_raises_the_limit_as_well_as_lowering_it(monkeypatch, value, expected):
    monkeypatch.setattr(memory, "cgroup_room", lambda *a, **k: 10**8)  # a tight container
    monkeypatch.setenv("LANDSCAPE_MAX_MEMORY", value)
    assert memory.available() == expected
    if expected > 10**8:  # above what the machine reports: allowed, the user said so
        memory.require(expected - 1, "this recording")
    with pytest.raises(LandscapeError, match="more than the .* LANDSCAPE_MAX_MEMORY allows"):
        memory.require(expected + 10**9, "this recording")


def test_the_refusal_names_the_override_and_a_bad_value_is_one_line(monkeypatch):
    monkeypatch.delenv("LANDSCAPE_MAX_MEMORY", raising=False)
    monkeypatch.setattr(memory, "cgroup_room", lambda *a, **k: 10**8)
    with pytest.raises(LandscapeError, match="set LANDSCAPE_MAX_MEMORY"):
        memory.require(10**12, "this recording")
    monkeypatch.setenv("LANDSCAPE_MAX_MEMORY", "lots")
    with pytest.raises(LandscapeError, match="LANDSCAPE_MAX_MEMORY='lots': expected bytes"):
        memory.available()
