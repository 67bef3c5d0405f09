"""The command line: defaults, several values batched, info, and bad input as one line."""

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from landscape.app.cli import main

SMALL = [
    "--width",
    "6",
    "--steps",
    "60",
    "--hessian-every",
    "10",
    "--save-params-every",
    "30",
    "--chunk-steps",
    "30",
    "--n-per-class",
    "8",
    "-q",
]


def run(args, cwd=None):
    return CliRunner().invoke(main, args, catch_exceptions=False)


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_record_with_defaults_prints_the_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = run(
        [
            "record",
            "--loss",
            "dmse1",
            "--eta",
            "0.05",
            "--steps",
            "100",
            "--chunk-steps",
            "50",
            "--save-params-every",
            "50",
            "-q",
        ]
    )
    assert r.exit_code == 0, r.output
    stores = list(tmp_path.glob("dmse1_eta0.05_*.zarr"))
    assert len(stores) == 1 and str(stores[0].name) in r.output
    ds = xr.open_zarr(stores[0])
    assert ds.sizes["replica"] == 1 and ds.attrs["status"] == "complete"
    assert float(ds.eta[0]) == 0.05 and str(ds.loss_name.values[0]) == "dmse1"
    assert ds.sizes["param"] == 603  # the reference network is the default


def test_several_values_make_one_batched_store(tmp_path):
    out = tmp_path / "grid.zarr"
    r = run(
        [
            "record",
            "--loss",
            "dmse2",
            "--eta",
            "0.1,0.2",
            "--eta",
            "0.3",
            "-A",
            "2,5",
            "-T",
            "20",
            "--seeds",
            "0-1",
            "--out",
            str(out),
        ]
        + SMALL
    )
    assert r.exit_code == 0, r.output
    ds = xr.open_zarr(out)
    assert ds.sizes["replica"] == 3 * 2 * 2
    assert sorted(set(ds.eta.values.tolist())) == [0.1, 0.2, 0.3]
    assert sorted(set(ds.amplitude.values.tolist())) == [2.0, 5.0]
    r = run(["info", str(out)])
    assert r.exit_code == 0 and "12" in r.output and "complete" in r.output and "dmse2" in r.output


def test_data_file(tmp_path):
    X = np.random.RandomState(0).randn(40, 5)
    y = (X[:, 0] > 0).astype(int)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "d.zarr"
    r = run(["record", "--data", str(tmp_path / "d.npz"), "--out", str(out)] + SMALL)
    assert r.exit_code == 0, r.output
    ds = xr.open_zarr(out)
    assert ds.sizes["class"] == 2 and ds.sizes["param"] == 5 * 6 + 6 + 6 * 2 + 2
    assert np.isnan(ds.val_acc.values).all()  # no validation data given


BAD = [
    (["--loss", "hinge"], "'hinge' is not one of 'ce', 'dce'"),
    (["--eta", "0"], "eta must be > 0"),
    (["--eta", "-1"], "eta must be > 0"),
    (["--eta", "abc"], "not a valid number"),
    (["-A", "0.5"], "amplitude A must be >= 1"),
    (["-T", "1"], "period T must be an integer from 2"),
    (["--width", "0"], "width must be >= 1"),
    (["--top-k", "1"], "top-k must be >= 2"),
    (["--device", "cuda"], "no CUDA GPU"),
    (["--device", "tpu"], "device"),
    (["--dtype", "float16"], "'float16' is not one of 'float64', 'float32'"),
    (["--data", "/nonexistent/x.npz"], "does not exist"),
    (["--data", str(Path(__file__))], "must end in .npz, .h5"),
    (["--seeds", "x"], "seeds"),
    (["--save-params-every", "7"], "multiple of hessian-every"),
    (["--out", "/nonexistent-dir/x.zarr"], "does not exist"),
]


@pytest.mark.parametrize("args, msg", BAD)
def test_bad_input_is_one_line(tmp_path, args, msg):
    if "--out" not in args:
        args = args + ["--out", str(tmp_path / "x.zarr")]
    r = CliRunner().invoke(main, ["record"] + SMALL + args)
    assert r.exit_code == 2, r.output
    assert msg in r.output and r.output.count("\n") == 1 and "Traceback" not in r.output
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.subprocess
def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    p = subprocess.run(
        [sys.executable, "-m", "landscape", "record", "--eta", "0", "--out", str(tmp_path / "x.zarr")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 2 and p.stderr.strip() == "error: learning rate eta must be > 0, got 0.0"


def test_existing_store_is_refused_and_untouched(tmp_path):
    out = tmp_path / "run.zarr"
    assert run(["record", "--out", str(out)] + SMALL).exit_code == 0
    before = tree_digest(out)
    for args in (
        ["record", "--out", str(out)] + SMALL,  # exists
        ["record", "--out", str(out), "--overwrite", "--eta", "0"] + SMALL,  # bad value: validated first
        ["record", "--out", str(out), "--overwrite", "--data", "/nope.npz"] + SMALL,
        ["record", "--resume", str(out)],  # complete already
        ["record", "--resume", str(out), "--eta", "0.3"],
    ):  # settings come from the store
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2 and r.output.count("\n") == 1, (args, r.output)
    assert tree_digest(out) == before
    other = tmp_path / "notes"
    other.mkdir()
    (other / "a.txt").write_text("keep me")
    r = CliRunner().invoke(main, ["record", "--out", str(other), "--overwrite"] + SMALL)
    assert r.exit_code == 2 and "not a landscape store" in r.output
    assert (other / "a.txt").read_text() == "keep me"


def test_overwrite_replaces_a_store(tmp_path):
    out = tmp_path / "run.zarr"
    assert run(["record", "--out", str(out)] + SMALL).exit_code == 0
    assert run(["record", "--out", str(out), "--overwrite", "--eta", "0.25"] + SMALL).exit_code == 0
    assert float(xr.open_zarr(out).eta[0]) == 0.25


@pytest.mark.parametrize("target", ["missing.zarr", "plain_dir"])
def test_info_on_a_non_store(tmp_path, target):
    (tmp_path / "plain_dir").mkdir()
    r = CliRunner().invoke(main, ["info", str(tmp_path / target)])
    assert r.exit_code == 2 and r.output.startswith("error: ") and r.output.count("\n") == 1


@pytest.mark.parametrize("command", ["record", "sweep"])
def test_the_resume_hint_is_shell_quoted(tmp_path, monkeypatch, command):
    """Ctrl-C's hint is a command line a shell runs as it is, for a path with a space too."""
    import shlex

    from landscape import recorders
    from landscape.recorders import sweep as sweeps

    def interrupted(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(recorders, "record", interrupted)
    monkeypatch.setattr(sweeps, "sweep", interrupted)
    out = tmp_path / "my runs" / "a b.zarr"
    out.parent.mkdir()
    args = [command, "--out", str(out)] + (SMALL if command == "record" else ["--width", "6", "--steps", "20"])
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 130, r.output
    hint = r.output.strip().splitlines()[-1].split(": ", 1)[1]
    assert shlex.split(hint)[-1] == str(out), hint
