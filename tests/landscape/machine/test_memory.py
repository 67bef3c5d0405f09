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
