"""One writer per store: a lock file naming the process that writes it.

`record`, `resume`, `--overwrite` and `sweep` take the lock of the store they write and
refuse a store whose lock is held by a live process. A lock left by a killed process is
recognised (its process is gone, or its PID now belongs to a process that started later)
and taken over. A lock from another host cannot be checked from here and is kept until a
user says it is stale (`--break-lock`, `break_lock`): a node that died leaves one.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from landscape import LandscapeError


def lock_file(path) -> Path:
    """The lock of the store at `path`: a hidden file beside it (inside it, zarr would list it
    as a stray member), so it can be taken before the store exists."""
    p = Path(path).resolve()
    return p.parent / f".{p.name}.writer-lock"


def _start_time(pid: int) -> str | None:
    """The process's start time (Linux /proc), to tell a live writer from a reused PID."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine's process: assume it is alive
    pid = int(holder.get("pid", -1))
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    start = holder.get("start")
    return start is None or start == _start_time(pid)


def holder(path) -> dict | None:
    """Who holds the lock of the store at `path` (None if nobody alive does)."""
    try:
        h = json.loads(lock_file(path).read_text())
    except (OSError, ValueError):
        return None
    return h if _alive(h) else None


def check_unlocked(path):
    """Raise if a live process writes the store at `path`."""
    h = holder(path)
    if h is not None and not (h.get("pid") == os.getpid() and h.get("host") == socket.gethostname()):
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(h.get("time", 0)))
        other = h.get("host") != socket.gethostname()
        raise LandscapeError(
            f"{path} is being written by process {h.get('pid')} on {h.get('host')} (since {since}); "
            + (
                "a lock from another machine cannot be checked from here: if that process is gone (its node "
                "died), take the lock over with --break-lock"
                if other
                else "wait for it to finish or stop it first"
            )
        )


def acquire(path):
    """Take the lock of the store at `path` (it need not exist yet)."""
    check_unlocked(path)
    p = lock_file(path)
    me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _start_time(os.getpid()), "time": time.time()}
    tmp = p.with_name(f"{p.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(me))
        os.replace(tmp, p)  # a stale lock is replaced in one step
    except OSError as exc:
        raise LandscapeError(f"cannot write {path}: {exc.strerror or exc}") from None
    if holder(path) != me:  # another process took it at the same moment
        raise LandscapeError(f"{path} is being written by another process")


def break_lock(path) -> dict | None:
    """Remove the lock of the store at `path`, held by a process this machine cannot check (on
    another host) or by one that is gone: what `--break-lock` does, never done silently. A live
    process on this machine keeps its lock. Returns the former holder (None if none)."""
    p = lock_file(path)
    try:
        h = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if h.get("host") == socket.gethostname() and _alive(h) and h.get("pid") != os.getpid():
        raise LandscapeError(
            f"{path} is being written by process {h.get('pid')} on this machine; stop it first (--break-lock "
            "takes over only locks of processes that are gone or on other machines)"
        )
    try:
        p.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise LandscapeError(f"cannot remove the lock {p}: {exc.strerror or exc}") from None
    return h


def release(path):
    p = lock_file(path)
    try:
        h = json.loads(p.read_text())
        if h.get("pid") == os.getpid() and h.get("host") == socket.gethostname():
            p.unlink()
    except (OSError, ValueError):
        pass


@contextmanager
def held(path):
    acquire(path)
    try:
        yield
    finally:
        release(path)
