"""Bad input, each case: exit status 2, one line naming the cause, nothing written (or an
existing store unchanged). The list mirrors docs/reliability.md."""

import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from landscape.app.cli import main
from tests.app.test_cli import SMALL

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def one_line_error(args, message, cwd_files=None):
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, (args, r.output)
    assert r.output.startswith("error: ") and r.output.count("\n") == 1, (args, r.output)
    assert message in r.output, (args, r.output)
    return r


def snapshot(d: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def data_file(tmp_path, kind) -> Path:
    f = tmp_path / "d.npz"
    X, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 3
    if kind == "npy renamed":
        np.save(tmp_path / "d.npy", X)
        (tmp_path / "d.npy").rename(f)
    elif kind == "empty":
        f.write_bytes(b"")
    elif kind == "text renamed":
        f.write_text("1,2,3\n4,5,6\n")
    elif kind == "pickled":
        np.savez(f, X=np.array([{"a": 1}] * 20, dtype=object), y=y)
    elif kind == "complex X":
        np.savez(f, X=X + 1j, y=y)
    elif kind == "label 1e9":
        np.savez(f, X=X, y=np.where(np.arange(20) == 0, 10**9, y))
    return f


@pytest.mark.parametrize(
    "kind, message",
    [
        ("npy renamed", "is not an NPZ archive"),
        ("empty", "is not an NPZ archive"),
        ("text renamed", "is not an NPZ archive"),
        ("pickled", "holds Python objects (pickles), which are never loaded"),
        ("complex X", "X must hold finite real numbers"),
        ("label 1e9", "labels go up to 1000000000"),
    ],
)
def test_bad_data_files(tmp_path, kind, message):
    f = data_file(tmp_path, kind)
    before = set(tmp_path.iterdir())
    one_line_error(["record", "--data", str(f), "--out", str(tmp_path / "r.zarr")] + SMALL, message)
    assert set(tmp_path.iterdir()) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--top-k", "700", "--eig-max-iter", "800", "--width", "100"], "exceeds the network's 603 parameters"),
        (["--width", "10000000"], "this recording needs about"),
        (["--steps", str(10**12)], "this recording needs about"),
        (["--seeds", "0-99999", "--width", "100"], "this recording needs about"),
    ],
)
def test_requests_that_cannot_fit(tmp_path, args, message):
    base = [a for a in SMALL if a not in ("--width", "6")] if "--width" in args else SMALL
    if "--steps" in args:
        base = [a for a in base if a not in ("--steps", "60")]
    one_line_error(["record", "--out", str(tmp_path / "r.zarr")] + base + args, message)
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fused", "--depth", "2"], "--fused runs the one-hidden-layer MLP (--depth 1), not depth 2"),
        (["--fused", "--compile"], "--fused and --compile are two ways of running the step: choose one"),
        (["--fused", "--model", "examples.cnn:make"], "--fused applies to the built-in MLP only"),
    ],
)
def test_fused_where_it_does_not_apply(tmp_path, args, message):
    one_line_error(["record", "--out", str(tmp_path / "r.zarr")] + SMALL + args, message)
    assert not (tmp_path / "r.zarr").exists()


def test_unwritable_out():
    one_line_error(["record", "--out", "/proc/x.zarr"] + SMALL, "/proc/x.zarr")


def test_slices_bad_span_grid_and_fig(tmp_path):
    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    before = snapshot(run)
    one_line_error(["analyze", "slices", str(run), "--step", "9000", "--span", "nan"], "a finite --span > 0")
    one_line_error(
        ["analyze", "slices", str(run), "--step", "9000", "--grid", "100000"],
        "a 100000 × 100000 slice of 603 parameters needs about",
    )
    one_line_error(
        ["analyze", "slices", str(run), "--step", "9000", "--fig", str(tmp_path / "no" / "x.png")], "directory"
    )
    assert snapshot(run) == before


def test_reproduce_out_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    one_line_error(["reproduce", "fig4", "--tiny", "--out", str(f)], "exists and is not a directory")


@pytest.mark.parametrize(
    "toml, message",
    [
        ('eta = "abc"', "eta: 'abc' is not a valid number"),
        ('width = "ten"', "width: 'ten' is not a valid integer"),
        ("width = 10.5", "width: '10.5' is not a valid integer"),
        ('seeds = "x"', "seeds: 'x' is not a count"),
        ("steps = 1.5", "steps: '1.5' is not a valid integer"),
        ("data = 5", "data: expected a file path"),
        ("loss = 3", "unknown loss '3'"),
        ("hessian_pairs = 1", "hessian-pairs: expected true or false"),
        ("until = 7", "until: expected text"),
    ],
)
def test_sweep_toml_types(tmp_path, toml, message):
    f = tmp_path / "s.toml"
    f.write_text(toml + "\n")
    one_line_error(["sweep", "--config", str(f), "--out", str(tmp_path / "s.zarr")], message)
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.dask
def test_scheduler_address_where_an_http_server_listens(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_address[1]
        one_line_error(
            ["sweep", "--steps", "20", "--scheduler", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "s.zarr")],
            "cannot reach the Dask scheduler",
        )
    finally:
        server.shutdown()
    assert not (tmp_path / "s.zarr").exists()
