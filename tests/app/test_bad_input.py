"""Bad input, each case: exit status 2, one line naming the cause, nothing written (or an
existing store unchanged). The list mirrors docs/reference/reliability.md."""

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
        (["--fused", "--depth", "2"], "--step fused runs the one-hidden-layer MLP (--depth 1), not depth 2"),
        (["--step", "fused", "--depth", "2"], "--step fused runs the one-hidden-layer MLP (--depth 1), not depth 2"),
        (["--fused", "--compile"], "--compile and --fused are two ways of running the step: choose one"),
        (["--step", "eager", "--fused"], "--step eager and --fused are two ways of running the step: choose one"),
        (["--step", "turbo"], "'turbo' is not one of 'eager', 'compile', 'fused'"),
        (["--fused", "--model", "examples.cnn:make"], "--step fused applies to the built-in MLP only"),
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
    one_line_error(["analyze", "slices", str(run), "--at-step", "9000", "--span", "nan"], "a finite --span > 0")
    one_line_error(
        ["analyze", "slices", str(run), "--at-step", "9000", "--grid", "100000"],
        "a 100000 × 100000 slice of 603 parameters needs about",
    )
    one_line_error(
        ["analyze", "slices", str(run), "--at-step", "9000", "--fig", str(tmp_path / "no" / "x.png")], "directory"
    )
    assert snapshot(run) == before


def test_reproduce_out_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    one_line_error(["reproduce", "fig4", "--tiny", "--dir", str(f)], "exists and is not a directory")


@pytest.mark.parametrize(
    "toml, message",
    [
        ('eta = "abc"', "eta: 'abc' is not a valid number"),
        ('width = "ten"', "width: 'ten' is not a valid integer"),
        ("width = 10.5", "width: '10.5' is not a valid integer"),
        ('seeds = "x"', "seeds: 'x' is not a count"),
        ("steps = 1.5", "steps: '1.5' is not a valid integer"),
        ("data = 5", "data: expected a file path"),
        ("loss = 3", "loss: '3' is none of ce, dce, mse, dmse1, dmse2"),
        ("hessian_pairs = 1", "hessian-pairs: expected true or false"),
        ("until = 7", "until: expected text"),
    ],
)
def test_sweep_toml_types(tmp_path, toml, message):
    f = tmp_path / "s.toml"
    f.write_text(toml + "\n")
    one_line_error(["sweep", "--config", str(f), "--out", str(tmp_path / "s.zarr")], message)
    assert not (tmp_path / "s.zarr").exists()


@pytest.mark.slow
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


def _edge_data(tmp_path, kind) -> Path:
    f = tmp_path / "e.npz"
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 2)), np.arange(30) % 3
    arrays = {
        "label inf": dict(X=X, y=np.where(np.arange(30) == 3, np.inf, y)),
        "labels 1, 5, 9": dict(X=X, y=np.array([1, 5, 9])[y]),
        "one class": dict(X=X, y=np.zeros(30, int), X_val=X[:4], y_val=np.array([0, 1, 0, 1])),
        "validation class not trained": dict(X=X, y=y, X_val=X[:4], y_val=np.array([0, 1, 3, 1])),
        "labels in the millions": dict(X=X, y=np.arange(30) * 100_000),
    }[kind]
    np.savez(f, **arrays)
    return f


@pytest.mark.parametrize(
    "kind, message",
    [
        ("label inf", "labels for X must be non-negative integers"),
        ("labels 1, 5, 9", "every class in the training labels; missing: 0, 2, 3, 4, 6, 7, 8"),
        ("one class", "the training labels hold one class (0)"),
        ("validation class not trained", "validation labels 3 are not classes of the training labels"),
        ("labels in the millions", "labels go up to 2900000"),
    ],
)
def test_data_at_the_edges_is_refused_in_one_line(tmp_path, kind, message):
    f = _edge_data(tmp_path, kind)
    one_line_error(["record", "--data", str(f), "--out", str(tmp_path / "r.zarr")] + SMALL, message)
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.parametrize("kind", ["float16 X", "integer X", "float labels"])
def test_data_types_that_are_converted(tmp_path, kind):
    """Documented mapping (docs/reference/reliability.md): X of any real type is converted to the run's
    dtype, labels of a float type that hold integers to integers; the run equals the float64 one."""
    X, y = (np.random.default_rng(0).normal(size=(30, 2)) * 4).round(), np.arange(30) % 3
    conv = {"float16 X": (X.astype(np.float16), y), "integer X": (X.astype(np.int32), y)}
    Xc, yc = conv.get(kind, (X, y.astype(float)))
    np.savez(tmp_path / "c.npz", X=Xc, y=yc)
    np.savez(tmp_path / "f.npz", X=X, y=y)
    runs = []
    for name in ("c", "f"):
        out = tmp_path / f"{name}.zarr"
        r = CliRunner().invoke(main, ["record", "--data", str(tmp_path / f"{name}.npz"), "--out", str(out)] + SMALL)
        assert r.exit_code == 0, r.output
        runs.append(np.asarray(__import__("xarray").open_zarr(out).loss.values))
    np.testing.assert_array_equal(*runs)


@pytest.mark.parametrize(
    "args, message",
    [
        (["-T", "1000000000000000000000"], "period T must be an integer from 2 to 1e+12"),
        (["-T", "9223372036854775807"], "period T must be an integer from 2 to 1e+12"),
        (["--seeds", "99999999999999999999"], "need from 1 to 1,000,000 seeds"),
        (["--seeds", "0-10000000000"], "must hold from 1 to 1,000,000 seeds"),
        (["--seeds", "3,3"], "seed 3 given twice"),
        (["--seeds", "4294967296,1"], "seeds must be integers from 0 to 4294967295"),
        (["--data-seed", "-1"], "data-seed and val-seed must be integers from 0"),
        (["--threads", "100000"], "threads must be from 0 (torch's default) to 1024"),
        (["--trace-samples", "5000000000"], "trace-samples must be 0 (off) or from 2"),
        (["--density-steps", "1"], "density-steps must be 0 (off) or from 2 to 10000"),
        (["--density-steps", "20", "--density-vectors", "0"], "density-vectors must be from 1 to 100000"),
        (["--bottom-k", "-1"], "bottom-k must be from 0 (off) to 10000"),
        (["--eig-tol", "nan"], "eig-tol must be between 0 and 1"),
        (["--model-arg", "a=1"], "--model-arg goes with --model"),
        (["--steps", "99999999999999999999"], "steps must be from 1 to 1e+12"),
    ],
)
def test_knobs_past_their_bounds_are_one_line(tmp_path, args, message):
    base = SMALL
    if "--steps" in args:  # SMALL's own --steps 60 out
        i = SMALL.index("--steps")
        base = SMALL[:i] + SMALL[i + 2 :]
    one_line_error(["record", "--out", str(tmp_path / "r.zarr")] + base + args, message)
    assert not (tmp_path / "r.zarr").exists()


def test_a_compiler_that_makes_nothing_is_named(tmp_path, monkeypatch):
    """CXX=true exits 0 and writes no library: one line naming it and how to choose another."""
    monkeypatch.setenv("CXX", "true")
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "cache"))
    from landscape.engines import fused

    monkeypatch.setattr(fused, "_loaded", {})
    one_line_error(
        ["record", "--fused", "--eval-every", "20", "--out", str(tmp_path / "r.zarr")] + SMALL,
        "the compiler 'true' exited without writing the library; choose a C++ compiler with CXX=",
    )


@pytest.mark.parametrize(
    "cmd",
    [
        ["plot", "fig1", str(SHIPPED), "--fig", "nodir/x.png"],
        ["plot", "fig4", str(SHIPPED), "--fig", "nodir/x.png"],
        ["plot", "fig2", str(SHIPPED), "--fig", "nodir/x.png"],
        ["analyze", "instability", str(SHIPPED), "--fig", "nodir/x.png"],
        ["analyze", "generalization", str(SHIPPED), "--fig", "nodir/x.png"],
    ],
)
def test_a_figure_into_a_missing_folder_is_one_line(tmp_path, monkeypatch, cmd):
    monkeypatch.chdir(tmp_path)
    one_line_error(cmd, "directory nodir does not exist")


def test_a_store_whose_steps_done_is_not_a_number(tmp_path):
    import json

    out = tmp_path / "r.zarr"
    assert CliRunner().invoke(main, ["record", "--out", str(out)] + SMALL).exit_code == 0
    meta = json.loads((out / "zarr.json").read_text())
    meta["attributes"]["steps_done"] = "abc"
    (out / "zarr.json").write_text(json.dumps(meta))
    for cmd in ("info", "check"):
        one_line_error([cmd, str(out)], "is damaged: steps_done = 'abc' is not a step count")


# --- options past their limits, before any work (each case a traceback or a silent run before) ---
@pytest.mark.parametrize(
    "args, message",
    [
        (["analyze", "surface", "STORE", "--at-step", "100", "--grid", "1000000"], "surface needs about"),
        (["analyze", "surface", "STORE", "--at-step", "100", "--seed", "-1"], "'--seed': -1 is not in the range x>=0"),
        (["analyze", "surface", "STORE", "--at-step", "100", "--replica", "-1"], "'--replica': -1 is not in the range"),
        (["analyze", "surface", "STORE", "--at-step", "100", "--batch", "0"], "'--batch': 0 is not in the range x>=1"),
        (["analyze", "slices", "STORE", "--at-step", "100", "--follow", "-1"], "'--follow': -1 is not in the range"),
        (["analyze", "pca", "STORE", "--components", "-1"], "'--components': -1 is not in the range x>=1"),
        (["analyze", "pca", "STORE", "--components", "99"], "--components must be from 1 to 19 (the path has 20"),
        (
            ["analyze", "density", "STORE", "--at-step", "100", "--bottom-k", "1000"],
            "--bottom-k from 1 to 603 (got 1000)",
        ),
        (["analyze", "density", "STORE", "--at-step", "100", "--lanczos-steps", "100000"], "--lanczos-steps from 2 to"),
        (["analyze", "interpolate", "STORE", "--from-step", "5", "--points", "10000000000000"], "points of a line"),
        (["analyze", "bifurcations", "STORE", "--bogus"], "No such option '--bogus'"),
        (["sweep", "--config", "DIR", "--dry-run"], "is a directory, not a TOML file"),
    ],
)
def test_options_past_their_limits_are_one_line(tmp_path, args, message):
    (tmp_path / "cfg").mkdir()
    args = [{"STORE": str(SHIPPED), "DIR": str(tmp_path / "cfg")}.get(a, a) for a in args]
    if args[0] == "analyze":
        args += ["--out", str(tmp_path / "o.zarr")]
    one_line_error(args, message)
    assert not (tmp_path / "o.zarr").exists()


def test_bottom_k_past_the_network_is_refused_before_the_store(tmp_path):
    out = tmp_path / "r.zarr"
    one_line_error(["record", "--bottom-k", "1000", "--out", str(out)] + SMALL, "bottom-k (1000) exceeds the network's")
    assert not out.exists()


# --- the dry run checks what the run checks; contradictions are refused ---
SWEEP = ["sweep", "--loss", "dce", "--width", "4", "--steps", "20", "--n-per-class", "8"]


@pytest.mark.parametrize("dry", [True, False])
@pytest.mark.parametrize(
    "args, message",
    [
        (["--eta", "0.5,0.5"], "eta 0.5 given twice"),
        (["--width", "4,4"], "width 4 given twice"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--workers", "-2"], "--workers must be >= 1, got -2"),
        (["--out", "RUN"], "is not a landscape sweep store; refusing to overwrite it"),
        (["--out", "SWEEP"], "already exists; use --resume to continue it or --overwrite"),
        (["--steps-per-eta", "100"], "--steps fixes every run's length and --steps-per-eta sets it from η"),
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "are two places to run; give one"),
    ],
)
def test_the_dry_run_refuses_what_the_run_refuses(tmp_path, args, message, dry):
    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    sweep = tmp_path / "s.zarr"
    assert CliRunner().invoke(main, [*SWEEP, "--out", str(sweep), "-q"]).exit_code == 0
    before = snapshot(tmp_path)
    args = [{"RUN": str(run), "SWEEP": str(sweep)}.get(a, a) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "new.zarr")]
    one_line_error(SWEEP + args + (["--dry-run"] if dry else []), message)
    assert snapshot(tmp_path) == before


def test_steps_in_the_toml_file_and_steps_per_eta_on_the_line(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('loss = ["dce"]\nsteps = 500\n')
    one_line_error(["sweep", "--config", str(toml), "--steps-per-eta", "100", "--dry-run"], "--steps-per-eta")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tiny", "--quick"], "--quick and --tiny are sizes of the same run; give one"),
        (["--redraw", "--workers", "2"], "--redraw trains nothing; --workers would do nothing with it"),
        (["--redraw", "--device", "cpu"], "--redraw trains nothing; --device"),
        (["--tiny", "--workers", "2", "--scheduler", "tcp://127.0.0.1:9"], "are two places to run; give one"),
        (["--tiny", "--dir", "RUN"], "is a Zarr store (a recording or a sweep); reproduce writes a folder"),
        (["--tiny", "--workers", "0"], "'--workers': 0 is not in the range x>=1"),
    ],
)
def test_reproduce_contradictions_and_wrong_places(tmp_path, args, message):
    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    before = snapshot(tmp_path)
    args = [{"RUN": str(run)}.get(a, a) for a in args]
    if "--dir" not in args:
        args += ["--dir", str(tmp_path / "rep")]
    one_line_error(["reproduce", "fig4", *args], message)
    assert snapshot(tmp_path) == before


def test_a_package_missing_mid_command_is_one_line(tmp_path, monkeypatch):
    """A command that reaches for a package this environment lacks (an extra not installed)
    ends with one line naming the package, not a traceback."""
    from landscape.store import sweep as sweep_store

    def missing(_):
        import landscape_no_such_package  # noqa: F401

    monkeypatch.setattr(sweep_store, "is_sweep", missing)
    r = CliRunner().invoke(main, ["info", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        "error: this command needs the Python package 'landscape_no_such_package', which is not "
        "installed here: pip install landscape_no_such_package (or the extra that names it in the README)"
    ]
