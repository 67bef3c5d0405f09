"""This process's control groups (Linux): where a batch job's or a container's CPU and memory
limits are written, v1 (one hierarchy per controller) or v2 (one unified hierarchy)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def folders(controller: str, root: Path = ROOT, lines: list[str] | None = None) -> list[tuple[Path, bool]]:
    """The folders of this process's cgroup for `controller` ('cpu', 'memory') and of its
    ancestors up to `root`, innermost first, each with whether it is v2; a limit set on any of
    them applies. `lines`: /proc/self/cgroup's (read when None); [] where it cannot be read."""
    if lines is None:
        try:
            lines = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return []
    out: list[tuple[Path, bool]] = []
    for line in lines:
        hid, ctrl, rel = line.split(":", 2)
        v2 = hid == "0" and ctrl == ""
        if not v2 and controller not in ctrl.split(","):
            continue
        top = root if v2 else root / ctrl  # the hierarchy's own root
        folder = top / rel.lstrip("/")
        chain = [folder, *folder.parents]
        out += [(d, v2) for d in chain[: chain.index(top) + 1]]
    return out
