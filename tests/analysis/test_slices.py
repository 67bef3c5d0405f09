"""Loss slices: the centre is the recorded loss, the curvature along v1 is λ1."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
from click.testing import CliRunner

from landscape.analysis.slices import loss_slice, loss_slices
from landscape.app.cli import main
from landscape.runs import build

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
    # the iterates' coordinates, recomputed independently: θ from the recorder's own step loop
    # started at the last saved vector, the plane from the stored (or a dense-Hessian) basis
    X = iterates(step, 20)
    if step == 9000:
        V = ds.eigvec.isel(replica=0).sel(pstep=9000).values[:2]
    else:
        V = np.linalg.eigh(dense_hessian_at(X[0], step))[1][:, ::-1][:, :2].T
    V = V / np.linalg.norm(V, axis=1, keepdims=True)
    d = X - X[0]
    a, b = d @ V[0], d @ V[1]
    off = np.linalg.norm(d - np.outer(a, V[0]) - np.outer(b, V[1]), axis=1)
    # eigenvector signs are arbitrary
    np.testing.assert_allclose(np.abs(res.iter_a.values), np.abs(a), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.abs(res.iter_b.values), np.abs(b), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.iter_offplane.values, off, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(res.iter_loss.values, ds.loss.isel(replica=0).values[step : step + 21])
    assert res.iter_offplane[0] == 0 and off[1:].max() > 0


def iterates(step, follow):
    """θ_step … θ_{step+follow} of replica 0 by the engine's plain step loop from the saved vector."""
    from landscape.store.run import RunStore

    cfg = RunStore.open(SHIPPED).config
    eng = build.engine(cfg, build.dataset(cfg), [cfg.replicas()[0]])
    pe = cfg.save_params_every
    start = (step // pe) * pe
    theta = torch.as_tensor(xr.open_zarr(SHIPPED).params.isel(replica=0).sel(pstep=start).values)[None]
    out = []
    for t in range(start, step + follow + 1):
        if t >= step:
            out.append(theta[0].numpy().copy())
        theta, _ = eng.step(theta, t)
    return np.array(out)


def dense_hessian_at(theta, step):
    """The dense float64 Hessian of replica 0's F_step at θ (tests/reference.py)."""
    from landscape.store.run import RunStore
    from tests import reference

    cfg = RunStore.open(SHIPPED).config
    eng = build.engine(cfg, build.dataset(cfg), [cfg.replicas()[0]])
    return reference.dense_hessian(eng, torch.as_tensor(theta)[None], step, 0)


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
            "--at-step",
            "9450",
            "--at-step",
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
        (["--at-step", "9990"], "out of range"),
        (["--at-step", "-5"], "out of range"),
        (["--at-step", "100", "--replica", "7"], "replica 7 out of range"),
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


@pytest.mark.slow
@pytest.mark.subprocess
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
