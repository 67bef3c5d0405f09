"""Faults with real processes: SIGKILL, SIGTERM and Ctrl-C of record and sweep, a SIGKILLed
sweep parent, and a second writer on a live store."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from landscape.store import run as store
from landscape.store.sweep import open_sweep
from tests.recorders.test_record import assert_same_recording
from tests.recorders.test_sweep import same

pytestmark = pytest.mark.subprocess

CLI = [sys.executable, "-m", "landscape"]
RECORD = [
    "--loss",
    "dmse1",
    "--eta",
    "0.5,1",
    "-A",
    "8",
    "-T",
    "60",
    "--seeds",
    "2",
    "--width",
    "12",
    "--steps",
    "1500",
    "--hessian-every",
    "25",
    "--save-params-every",
    "100",
    "--chunk-steps",
    "100",
    "--n-per-class",
    "10",
    "-q",
]
SWEEP = [
    "--loss",
    "dce,dmse1",
    "--eta",
    "0.5,1",
    "-A",
    "5",
    "-T",
    "40",
    "--width",
    "10",
    "--seeds",
    "2",
    "--steps",
    "1200",
    "--hessian-every",
    "25",
    "--save-params-every",
    "100",
    "--chunk-steps",
    "100",
    "--batch-size",
    "2",
    "-q",
]


def attrs(path: Path) -> dict:
    try:
        return json.loads((path / "zarr.json").read_text())["attributes"]
    except (OSError, ValueError, KeyError):
        return {}


def wait_for(cond, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


def digest(path: Path) -> dict:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d.name))
    return out


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    ref = tmp_path / "ref.zarr"
    subprocess.run(CLI + ["record"] + RECORD + ["--out", str(ref)], check=True, capture_output=True)
    run = tmp_path / "killed.zarr"
    proc = subprocess.Popen(
        CLI + ["record"] + RECORD + ["--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: attrs(run).get("steps_done", 0) >= 300)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = attrs(run)["steps_done"]
    assert 300 <= done < 1500, "the run must be killed mid-way"
    ds = store.open_dataset(run)  # opens after the kill, holding every flushed step
    assert ds.attrs["status"] == "running" and ds.sizes["step"] >= 300
    assert np.isfinite(ds.loss.values).all()
    r = subprocess.run(CLI + ["record", "--resume", str(run), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_recording(ref, run)


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume(tmp_path):
    ref = tmp_path / "ref.zarr"
    subprocess.run(CLI + ["sweep"] + SWEEP + ["--out", str(ref)], check=True, capture_output=True)
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen(
        CLI + ["sweep"] + SWEEP + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    # kill inside the second batch, after the first is complete
    wait_for(
        lambda: attrs(out / "b000").get("status") == "complete" and attrs(out / "b001").get("steps_done", 0) >= 200
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert attrs(out / "b000")["status"] == "complete" and attrs(out / "b001")["status"] == "running"
    first = (out / "b000" / "loss" / "zarr.json").stat().st_mtime_ns
    r = subprocess.run(CLI + ["sweep", "--resume", str(out), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "b000" / "loss" / "zarr.json").stat().st_mtime_ns == first  # the finished batch was not redone
    same(open_sweep(ref), open_sweep(out))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_record_stops_on_a_signal_marks_the_store_and_resumes_bit_identically(tmp_path, sig, code):
    ref = tmp_path / "ref.zarr"
    subprocess.run(CLI + ["record"] + RECORD + ["--out", str(ref)], check=True, capture_output=True)
    run = tmp_path / "run.zarr"
    proc = subprocess.Popen(
        CLI + ["record"] + RECORD + ["--out", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: attrs(run).get("steps_done", 0) >= 300)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)  # a guard against a hang, not a speed limit
    assert proc.returncode == code
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("recording 4 replica(s)"), lines
    assert lines[1] == f"interrupted; resume with: landscape record --resume {run}"
    assert attrs(run)["status"] == "interrupted" and attrs(run)["steps_done"] < 1500
    r = subprocess.run(CLI + ["record", "--resume", str(run), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert_same_recording(ref, run)


@pytest.mark.slow
def test_a_second_writer_is_refused_and_a_stale_lock_is_not(tmp_path):
    run = tmp_path / "run.zarr"
    longer = RECORD + ["--steps", "12000"]  # still writing while two more commands start (no race)
    proc = subprocess.Popen(
        CLI + ["record"] + longer + ["--out", str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: attrs(run).get("steps_done", 0) >= 100)
        for args in (["record", "--resume", str(run)], ["record", "--overwrite", "--out", str(run)] + longer):
            r = subprocess.run(CLI + args, capture_output=True, text=True)
            assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
            assert f"is being written by process {proc.pid}" in r.stderr
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    before = digest(run)
    # the killed writer's lock is stale: resuming is allowed and finishes the run
    r = subprocess.run(CLI + ["record", "--resume", str(run), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert attrs(run)["status"] == "complete" and digest(run) != before


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sweep_with_workers_stops_within_seconds(tmp_path, sig, code):
    out = tmp_path / "s.zarr"
    proc = subprocess.Popen(
        CLI + ["sweep"] + SWEEP + ["--workers", "2", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: any(attrs(out / b).get("steps_done", 0) >= 200 for b in ("b000", "b001")))
    workers = children_of(proc.pid)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)  # a guard against a hang, not a speed limit
    assert proc.returncode == code
    assert err.strip().splitlines()[-1] == f"interrupted; continue with: landscape sweep --resume {out}"
    status = {b: attrs(out / b).get("status", "missing") for b in ("b000", "b001", "b002", "b003")}
    assert "running" not in status.values() and status["b003"] == "missing", status  # queued: never started
    assert "interrupted" in status.values(), status
    wait_for(lambda: not any(alive(w) for w in workers), timeout=10)
    r = subprocess.run(CLI + ["sweep", "--resume", str(out), "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert all(attrs(out / b)["status"] == "complete" for b in status)


@pytest.mark.slow
def test_workers_end_with_a_killed_parent(tmp_path):
    out = tmp_path / "s.zarr"
    proc = subprocess.Popen(
        CLI + ["sweep"] + SWEEP + ["--workers", "2", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: any(attrs(out / b).get("steps_done", 0) >= 200 for b in ("b000", "b001")))
    workers = [w for w in children_of(proc.pid) if "spawn_main" in Path(f"/proc/{w}/cmdline").read_text()]
    assert workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not any(alive(w) for w in workers), timeout=15)
    status = {b: attrs(out / b).get("status", "missing") for b in ("b000", "b001", "b002", "b003")}
    assert "running" not in status.values(), status


def test_sweep_in_one_process_stops_on_sigterm(tmp_path):
    out = tmp_path / "s.zarr"
    proc = subprocess.Popen(
        CLI + ["sweep"] + SWEEP + ["--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: attrs(out / "b000").get("steps_done", 0) >= 200)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err.strip().splitlines()[-1] == f"interrupted; continue with: landscape sweep --resume {out}"
    status = {b: attrs(out / b).get("status", "missing") for b in ("b000", "b001", "b002", "b003")}
    assert status["b000"] == "interrupted" and status["b003"] == "missing", status


@pytest.mark.slow
def test_reproduce_stops_on_ctrl_c_and_the_same_command_continues(tmp_path):
    out = tmp_path / "r"
    cmd = CLI + ["reproduce", "fig1", "--tiny", "--dir", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: attrs(out / "fig1.zarr" / "b000").get("steps_done", 0) >= 50)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "interrupted; run the same command again: finished batches are kept"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (out / "report.md").is_file()


@pytest.mark.slow
@pytest.mark.dask
def test_sweep_on_a_dask_cluster_stops_on_ctrl_c(tmp_path):
    from distributed import LocalCluster

    out = tmp_path / "s.zarr"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        proc = subprocess.Popen(
            CLI + ["sweep"] + SWEEP + ["--scheduler", cluster.scheduler_address, "--out", str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: attrs(out / "b000").get("steps_done", 0) >= 200)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert err.strip().splitlines()[-1] == f"interrupted; continue with: landscape sweep --resume {out}"
        time.sleep(5)  # a task already running on a worker ends there; queued ones were cancelled
        status = {b: attrs(out / b).get("status", "missing") for b in ("b000", "b001", "b002", "b003")}
        assert status["b003"] == "missing", status


def _interrupted_store(path, cfg):
    from landscape.recorders import record

    done = [0]

    def stop(k):
        done[0] += k
        if done[0] > cfg.chunk_steps:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        record(cfg, path, progress=stop)


def test_a_lock_from_another_host_is_kept_until_broken(tmp_path, tiny_cfg):
    """A node that died leaves a lock no one here can check: resume is refused with the way on
    (--break-lock), which takes it over and resumes to the uninterrupted result. A live writer
    on this machine is never broken."""
    from click.testing import CliRunner

    from landscape.app.cli import main
    from landscape.recorders import record
    from landscape.store import lock

    full = record(tiny_cfg, tmp_path / "full.zarr")
    cut = tmp_path / "cut.zarr"
    _interrupted_store(cut, tiny_cfg)
    lock.lock_file(cut).write_text(json.dumps({"pid": 4242, "host": "node17.cluster", "start": "1", "time": 1.7e9}))
    r = CliRunner().invoke(main, ["record", "--resume", str(cut), "-q"])
    assert r.exit_code == 2 and "on node17.cluster" in r.output and "--break-lock" in r.output, r.output
    r = CliRunner().invoke(main, ["record", "--resume", str(cut), "-q", "--break-lock"])
    assert r.exit_code == 0, r.output
    assert "took over the lock of" in r.output and "node17.cluster" in r.output
    assert_same_recording(full, cut)
    # a live process on this machine (this test's parent) keeps its lock
    me = {"pid": os.getppid(), "host": __import__("socket").gethostname(), "start": lock._start_time(os.getppid())}
    lock.lock_file(cut).write_text(json.dumps({**me, "time": time.time()}))
    r = CliRunner().invoke(main, ["record", "--out", str(cut), "--overwrite", "-q", "--break-lock"])
    assert r.exit_code == 2 and "stop it first" in r.output, r.output
    assert lock.lock_file(cut).exists()


@pytest.mark.slow
def test_a_sweep_left_locked_by_a_dead_node_resumes_with_break_lock(tmp_path):
    """SIGKILL mid-sweep, then the locks rewritten as a process on another host would have left
    them (the node died): `sweep --resume` is refused naming --break-lock; with it, the sweep's
    and the running batch's locks are taken over and the result equals an uninterrupted sweep."""
    from landscape.store import lock

    ref = tmp_path / "ref.zarr"
    subprocess.run(CLI + ["sweep"] + SWEEP + ["--out", str(ref)], check=True, capture_output=True)
    out = tmp_path / "killed.zarr"
    proc = subprocess.Popen(
        CLI + ["sweep"] + SWEEP + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_for(lambda: attrs(out / "b001").get("steps_done", 0) >= 200)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    dead = json.dumps({"pid": 4242, "host": "node17.cluster", "start": "1", "time": 1.7e9})
    for p in (out, out / "b001"):
        lock.lock_file(p).write_text(dead)
    r = subprocess.run(CLI + ["sweep", "--resume", str(out), "-q"], capture_output=True, text=True)
    assert r.returncode == 2 and "node17.cluster" in r.stderr and "--break-lock" in r.stderr, r.stderr
    r = subprocess.run(CLI + ["sweep", "--resume", str(out), "-q", "--break-lock"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "took over the lock of" in r.stderr
    same(open_sweep(ref), open_sweep(out))


@pytest.mark.dask
def test_a_cluster_without_a_worker_is_said_not_waited_on_in_silence(tmp_path, monkeypatch):
    """Its only worker died (here: it never had one): the sweep says so while the batches wait,
    instead of printing nothing while its store says 'running'."""
    from distributed import LocalCluster

    from landscape.config.sweep import SweepSpec
    from landscape.recorders import sweep as sweep_mod
    from tests.recorders.test_sweep import TINY

    monkeypatch.setattr(sweep_mod, "NO_WORKER_WAIT", 0.5)
    said = []

    def notify(line):
        said.append(line)
        raise KeyboardInterrupt  # what the user does next

    spec = SweepSpec().replace(**TINY)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        with pytest.raises(KeyboardInterrupt):
            sweep_mod.sweep(spec, tmp_path / "s.zarr", scheduler=cluster.scheduler_address, notify=notify)
    assert said and "has no worker (the last one died or left)" in said[0], said
