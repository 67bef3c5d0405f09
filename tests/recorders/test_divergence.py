"""A replica that diverges is data, not a crash: marked at its step, NaN from there, no solver
time, and the rest of its batch (and of its sweep) records to the end exactly as without it."""

import json
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from landscape.analysis.first_instability import first_instabilities, summarize
from landscape.app.cli import main
from landscape.config.run import RunConfig
from landscape.config.sweep import SweepSpec
from landscape.recorders import record, resume
from landscape.recorders.sweep import sweep

# DMSE1 at η = 50 overflows within a few steps (F non-finite at step 6 at width 20); η = 0.05 trains
BASE = RunConfig(
    loss="dmse1", etas=(0.05, 50.0), amplitudes=(50.0,), periods=(500,), seeds=(0,), width=20, steps=600,
    hessian_every=50, save_params_every=100, chunk_steps=200,
)  # fmt: skip
ARRAYS = (
    "loss",
    "loss_static",
    "train_acc",
    "val_acc",
    "iter_p",
    "iter_q",
    "iter_cos",
    "iter_proj",
    "params",
)


def _attrs(path):
    return json.loads((path / "zarr.json").read_text())["attributes"]


@pytest.mark.parametrize("fused", [False, True])
def test_a_diverging_replica_leaves_the_others_bit_for_bit(tmp_path, fused):
    """The healthy replica of a batch with a diverging one equals, bit for bit, the same replica
    recorded alone (its spectra to rounding: the batched products round differently with the
    batch's size, 3e-15 apart between two healthy batches too); the diverging one is marked,
    NaN from its step on, its spectra NaN and not converged, and the run completes."""
    kw = dict(step="fused", eval_every=25) if fused else {}
    both = record(replace(BASE, **kw), tmp_path / "both.zarr")
    alone = record(replace(BASE, etas=(0.05,), **kw), tmp_path / "alone.zarr")
    a = _attrs(both)
    assert a["status"] == "complete" and a["steps_done"] == 600
    d = a["diverged_at"]
    assert d[0] == -1 and 0 < d[1] < 50, d
    x, y = xr.open_zarr(both), xr.open_zarr(alone)
    for name in ARRAYS:
        np.testing.assert_array_equal(x[name].values[0], y[name].values[0], err_msg=name)
    np.testing.assert_allclose(x.eigval.values[0], y.eigval.values[0], rtol=1e-12)
    loss = x.loss.values[1]
    assert np.isfinite(loss[: d[1]]).all() and np.isnan(loss[d[1] + 1 :]).all()
    after = x.hstep.values > d[1]
    assert np.isnan(x.eigval.values[1, after]).all() and not x.eigconv.values[1, after].any()
    assert x.eigconv.values[0].all()


def test_resume_keeps_the_mark_and_the_others_go_on(tmp_path):
    """Interrupted after its first flush (the status set as a killed process leaves it), the run
    resumes: the mark is kept and the result equals the uninterrupted one."""
    full = record(BASE, tmp_path / "full.zarr")
    store = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        record(BASE, store, progress=_stop_after(200))
    assert _attrs(store)["status"] == "interrupted" and _attrs(store)["diverged_at"][1] > 0
    resume(store)
    x, y = xr.open_zarr(full), xr.open_zarr(store)
    assert _attrs(store)["diverged_at"] == _attrs(full)["diverged_at"]
    for name in (*ARRAYS, "eigval", "eigconv", "eigvec"):
        np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=name)


def _stop_after(n):
    done = [0]

    def progress(k):
        done[0] += k
        if done[0] > n:
            raise KeyboardInterrupt

    return progress


@pytest.mark.slow
def test_the_early_stop_does_not_wait_for_a_diverged_replica(tmp_path):
    cfg = replace(BASE, etas=(0.3, 50.0), periods=(5000,), steps=5000, until="first-instability", chunk_steps=250)
    out = record(cfg, tmp_path / "early.zarr")
    a = _attrs(out)
    assert a["steps_done"] < 5000 and a["diverged_at"][1] > 0, a["steps_done"]
    assert a["first_instability"][0] > 0 and a["first_instability"][1] == -1
    assert "1 diverged" in a["stopped"]


def test_the_cli_says_so_and_the_fig4_summary_counts_it_apart(tmp_path):
    out = tmp_path / "r.zarr"
    args = ["record", "--loss", "dmse1", "--eta", "0.05,50", "--width", "20", "--steps", "300", "--out", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "replica 1 (seed 0, eta 50) diverged at step" in r.output
    info = CliRunner().invoke(main, ["info", str(out)])
    assert "diverged   replica 1" in info.output
    s = summarize(first_instabilities([out]))
    div = dict(zip(s.eta.values.tolist(), s.n_diverged.values.tolist()))
    assert div == {0.05: 0, 50.0: 1}
    assert int(s.n_unstable.sel(condition=s.eta.values == 50.0).values.sum()) == 0


def test_a_sweep_with_a_diverging_replica_completes_every_other(tmp_path):
    spec = SweepSpec().replace(
        losses=("dmse1", "dce"), etas=(0.05, 50.0), amplitudes=(50.0,), periods=(500,), widths=(20,),
        seeds=(0, 1), steps=300, chunk_steps=100, hessian_every=50,
    )  # fmt: skip
    out = sweep(spec, tmp_path / "s.zarr")
    batches = sorted(p for p in out.iterdir() if p.name.startswith("b"))
    assert batches
    marked = 0
    for b in batches:
        a = _attrs(b)
        assert a["status"] == "complete" and a["steps_done"] == 300
        cfg = RunConfig.from_json(a["config"])
        for rep, d in zip(cfg.replicas(), a["diverged_at"]):
            loss = xr.open_zarr(b).loss.values
            if d < 0:
                assert np.isfinite(loss[cfg.replicas().index(rep)]).all()
            marked += d >= 0
    assert marked >= 2  # DMSE1 at η = 50, both seeds
    info = CliRunner().invoke(main, ["info", str(out)]).output
    assert "diverged" in info and all("complete" in line for line in info.splitlines() if line.startswith("  b"))


@pytest.mark.slow
def test_optional_spectra_skip_a_diverged_replica(tmp_path):
    """The optional spectra run on the healthy replicas with their own Γ: NaN and not converged
    for the diverged one, the healthy one's as recorded alone."""
    cfg = replace(BASE, layer_spectra=True, trace_samples=4, density_steps=4, density_vectors=2, bottom_k=1)
    x = xr.open_zarr(record(cfg, tmp_path / "both.zarr"))
    y = xr.open_zarr(record(replace(cfg, etas=(0.05,)), tmp_path / "alone.zarr"))
    after = x.hstep.values > _attrs(tmp_path / "both.zarr")["diverged_at"][1]
    for name in ("layer_eigval", "trace", "slq_nodes", "slq_weights", "lambda_min"):
        np.testing.assert_allclose(x[name].values[0], y[name].values[0], rtol=1e-12, atol=1e-12, err_msg=name)
        assert np.isnan(x[name].values[1, after]).all(), name
