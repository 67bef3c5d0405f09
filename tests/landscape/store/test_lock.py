"""The writer lock of a store: one live writer; a lock left by a process that is gone (or whose
PID was reused) is stale; a lock of another host is kept until broken on purpose."""

import json
import os
import socket
import subprocess
import sys

import pytest

from landscape import LandscapeError
from landscape.store import lock


def _write(path, **holder):
    lock.lock_file(path).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), **holder}))


def test_held_takes_and_releases_beside_the_store(tmp_path):
    store = tmp_path / "r.zarr"
    with lock.held(store):
        assert lock.lock_file(store) == tmp_path / ".r.zarr.writer-lock" and lock.lock_file(store).exists()
        assert lock.holder(store)["pid"] == os.getpid()
        lock.check_unlocked(store)  # its own lock does not stop the holder
    assert not lock.lock_file(store).exists() and lock.holder(store) is None


def test_a_live_process_on_this_host_keeps_its_lock(tmp_path):
    store = tmp_path / "r.zarr"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write(store, pid=child.pid, start=lock._start_time(child.pid), time=0)
        with pytest.raises(LandscapeError, match=f"being written by process {child.pid}.*stop it first"):
            lock.acquire(store)
        with pytest.raises(LandscapeError, match="stop it first"):
            lock.break_lock(store)
    finally:
        child.kill()
        child.wait()
    lock.acquire(store)  # gone now: the stale lock is replaced
    assert lock.holder(store)["pid"] == os.getpid()
    lock.release(store)


def test_a_reused_pid_is_not_the_writer(tmp_path):
    """The PID is alive (this process) but started at another time: the lock is stale."""
    store = tmp_path / "r.zarr"
    _write(store, pid=os.getpid(), start="1", time=0)
    assert lock.holder(store) is None


def test_another_hosts_lock_is_kept_until_broken(tmp_path):
    store = tmp_path / "r.zarr"
    _write(store, pid=4242, host="node17", time=0)
    with pytest.raises(LandscapeError, match="on node17.*--break-lock"):
        lock.check_unlocked(store)
    assert lock.break_lock(store)["host"] == "node17" and not lock.lock_file(store).exists()
    assert lock.break_lock(store) is None  # nothing left to break


def test_a_garbled_lock_file_holds_nothing(tmp_path):
    store = tmp_path / "r.zarr"
    lock.lock_file(store).write_text("{not json")
    assert lock.holder(store) is None
    lock.acquire(store)
    lock.release(store)
