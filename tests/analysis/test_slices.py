"""Loss slices: the centre is the recorded loss, the curvature along v1 is λ1."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from landscape.analysis.slices import loss_slice, loss_slices
from landscape.app.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


@pytest.mark.parametrize("step", [9000, 9285])  # eigenvectors stored at 9000, recomputed at 9285
def test_centre_is_recorded_loss_and_curvature_is_lambda1(step):
    ds = xr.open_zarr(SHIPPED)
    res = loss_slice(SHIPPED, step, replica=0, grid=41, span=1.0, follow=20)
    assert res.attrs["eigvec_source"] == ("stored" if step == 9000 else "recomputed")
    centre = float(res.loss.sel(a=0, b=0))
    assert centre == pytest.approx(float(ds.loss.isel(replica=0, step=step)), rel=1e-12)
    # curvature along v1 at the centre by central finite differences on a fine grid (h = 1e-5:
    # coarser steps cross ReLU kinks, whose curvature the Hessian does not see)
    fine = loss_slice(SHIPPED, step, replica=0, grid=5, span=2e-5, follow=0)
    h = float(fine.a[3] - fine.a[2])
    F = fine.loss.sel(b=0).values
    curv = (F[3] - 2 * F[2] + F[1]) / h**2
    assert curv == pytest.approx(float(res.eigval[0]), rel=0.01)
    # the iterates start at x_t and leave the plane only a little compared with their in-plane motion
    assert res.iter_a[0] == 0 and res.iter_offplane[0] == 0
    assert np.isfinite(res.iter_offplane).all()


def test_several_steps_and_the_command(tmp_path):
    store = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, store)
    fig = tmp_path / "s.png"
    r = CliRunner().invoke(
        main,
        [
            "analyze",
            "slices",
            str(store),
            "--step",
            "9450",
            "--step",
            "9560",
            "--grid",
            "9",
            "--follow",
            "5",
            "--fig",
            str(fig),
        ],
    )
    assert r.exit_code == 0, r.output
    assert fig.stat().st_size > 10_000
    saved = xr.open_zarr(store, group="slices/r0_t9450", consolidated=False)
    assert saved.loss.shape == (9, 9) and saved.sizes["follow"] == 6
    res = loss_slices(store, [9450, 9560], grid=9, follow=5)
    np.testing.assert_allclose(res.sel(slice_step=9450).loss.values, saved.loss.values, rtol=1e-12)
    # the recorded arrays are untouched by the analysis
    np.testing.assert_array_equal(xr.open_zarr(store).loss.values, xr.open_zarr(SHIPPED).loss.values)


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--step", "9990"], "out of range"),
        (["--step", "-5"], "out of range"),
        (["--step", "100", "--replica", "7"], "replica 7 out of range"),
    ],
)
def test_bad_slice_requests(args, msg, tmp_path):
    r = CliRunner().invoke(main, ["analyze", "slices", str(SHIPPED)] + args + ["--out", str(tmp_path / "o.zarr")])
    assert r.exit_code == 2 and msg in r.output and r.output.count("\n") == 1


READ_ONLY_CHECK = """
import os, sys
from click.testing import CliRunner
from landscape.analysis.slices import loss_slice
from landscape.app.cli import main
store, out = sys.argv[1], sys.argv[2]
assert not os.access(store, os.W_OK), "the store must really be read-only here"
assert loss_slice(store, 9285, grid=5, follow=3).loss.shape == (5, 5)
r = CliRunner().invoke(main, ["analyze", "bifurcations", store])
assert r.exit_code == 2 and "read-only" in r.output, r.output
r = CliRunner().invoke(main, ["analyze", "bifurcations", store, "--out", out])
assert r.exit_code == 0, r.output
print("ok")
"""


def test_analysis_runs_on_a_read_only_store():
    """Permissions do not bind root, so as root the check runs without the capabilities
    that override them (setpriv, util-linux)."""
    import subprocess
    import sys
    import tempfile

    work = Path(tempfile.mkdtemp(prefix="landscape-ro-"))
    work.chmod(0o777)
    store = work / "ro.zarr"
    shutil.copytree(SHIPPED, store)
    for p in [store, *store.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    prefix = []
    if os.geteuid() == 0:
        assert shutil.which("setpriv"), "running as root needs setpriv to drop CAP_DAC_OVERRIDE"
        prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", "--"]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "HOME": str(work),
        "MPLCONFIGDIR": str(work),
    }
    try:
        r = subprocess.run(
            prefix + [sys.executable, "-c", READ_ONLY_CHECK, str(store), str(work / "res.zarr")],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
        )
        assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    finally:
        for p in [store, *store.rglob("*")]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(work, ignore_errors=True)
