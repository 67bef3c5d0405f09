"""The wheel a user installs, not the editable checkout: every room is in it (the
`package-dir` mapping of recorders/ and analysis/ included), the fused step's C++ source is
packaged, and the installed command records and analyses from it."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_wheel_holds_every_room_and_runs(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next(tmp_path.glob("landscape-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "landscape").rglob("*.py")}
    sources |= {"landscape/recorders/" + p.name for p in (ROOT / "recorders").glob("*.py")}
    sources |= {"landscape/analysis/" + p.name for p in (ROOT / "analysis").glob("*.py")}
    assert not sources - names, sorted(sources - names)
    assert "landscape/engines/fused_step.cpp" in names and "landscape/engines/graph_forward.cpp" in names

    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(site), "LANDSCAPE_CACHE": str(tmp_path / "cache")}
    work = tmp_path / "work"  # not the checkout: nothing can be imported from it
    work.mkdir()
    which = subprocess.run(
        [sys.executable, "-c", "import landscape.engines.fused as f; print(f.__file__, f.SOURCE.exists())"],
        cwd=work, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert which.stdout.startswith(str(site)) and which.stdout.strip().endswith("True"), which.stdout
    small = ["--width", "8", "--steps", "60", "--n-per-class", "10", "--hessian-every", "20",
             "--save-params-every", "20", "--chunk-steps", "20"]  # fmt: skip
    steps = ["eager"]
    from landscape.engines import fused

    if fused.compiler() is not None:
        steps.append("fused")
    for step in steps:
        out = work / f"{step}.zarr"
        rec = subprocess.run(
            [sys.executable, "-m", "landscape", "record", "--loss", "dmse1", "--eta", "0.3", "--step", step,
             "--out", str(out), "-q", *small],
            cwd=work, env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert rec.returncode == 0, rec.stderr[-2000:]
        ana = subprocess.run(
            [sys.executable, "-m", "landscape", "analyze", "bifurcations", str(out)],
            cwd=work, env=env, capture_output=True, text=True,
        )  # fmt: skip
        assert ana.returncode == 0, ana.stderr[-2000:]
