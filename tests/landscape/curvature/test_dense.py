"""The whole spectrum of a small network (`landscape.curvature.dense`, `--density-method`):
every eigenvalue against numpy's eigvalsh of the dense float64 Hessian of `tests.reference`,
recorded as the density, the trace and the bottom pairs, replayed, resumed, and chosen by size."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.analysis.spectra import density
from landscape.config.run import DENSE_SPECTRUM_BELOW, RunConfig
from landscape.curvature import dense, quantities
from landscape.runs import build
from landscape.runs.opened import Run
from recorders.record import prepare, record
from tests.recorders.test_record import crash_and_resume
from tests.reference import dense_hessian

CFG = RunConfig(loss="dce", etas=(1.0, 2.0), amplitudes=(6.0,), periods=(60,), seeds=(0, 1), width=5, n_per_class=15,
                steps=60, hessian_every=20, save_params_every=20, chunk_steps=20, density_steps=10, trace_samples=4,
                bottom_k=2)  # fmt: skip


@pytest.mark.parametrize("activation, depth", [("relu", 1), ("tanh", 2)])
def test_every_eigenvalue_is_the_dense_hessians(activation, depth, monkeypatch):
    """Replicas formed a group at a time (a group of one here) give the same as all at once."""
    cfg = replace(CFG, activation=activation, depth=depth)
    eng = build.engine(cfg, build.dataset(cfg))
    theta = eng.advance(eng.init([r.seed for r in cfg.replicas()]), 0, 5)

    def op(rows):
        return eng.hvp_block(theta[rows], 5, eng.gamma(5)[rows])

    R, n = theta.shape
    vals, vecs = dense.spectrum(op, R, n, torch.float64, "cpu", vectors=True)
    monkeypatch.setattr(dense, "BATCH_NUMBERS", n * n)
    one_by_one, _ = dense.spectrum(op, R, n, torch.float64, "cpu")
    for r in range(R):
        H = dense_hessian(eng, theta, 5, r)
        w = np.linalg.eigvalsh(H)
        scale = np.abs(w).max()
        np.testing.assert_allclose(vals[r].numpy(), w, rtol=0, atol=1e-10 * scale)
        np.testing.assert_allclose(one_by_one[r].numpy(), w, rtol=0, atol=1e-10 * scale)
        V = vecs[r].numpy()
        np.testing.assert_allclose(V @ H, vals[r].numpy()[:, None] * V, rtol=0, atol=1e-9 * scale)


def test_a_small_network_records_the_exact_density_trace_and_bottom(tmp_path):
    path = record(CFG, tmp_path / "r.zarr")
    ds = xr.open_zarr(path)
    assert ds.attrs["density_method"] == "dense"
    n = int(ds.attrs["num_params"])
    assert ds.slq_nodes.shape[2:] == (1, n)
    np.testing.assert_allclose(ds.slq_weights.values, 1 / n)
    run = Run.open(path)
    eng = run.engine()
    theta = torch.as_tensor(run.params_at([40])[:, 0])
    for r in range(2):
        w = np.linalg.eigvalsh(dense_hessian(eng, theta, 40, r))
        at = ds.isel(replica=r).sel(hstep=40)
        scale = np.abs(w).max()
        np.testing.assert_allclose(at.slq_nodes.values[0], w, rtol=0, atol=1e-10 * scale)
        assert abs(float(at.trace) - w.sum()) <= 1e-10 * scale * n and float(at.trace_se) == 0.0
        np.testing.assert_allclose(at.lambda_min.values, w[:2], rtol=0, atol=1e-10 * scale)
        assert at.lambda_min_conv.values.all() and (at.lambda_min_res.values <= 1e-9 * scale).all()
    again = Run.open(path).recompute("density", [40])
    np.testing.assert_allclose(again["slq_nodes"][:, 0], ds.slq_nodes.sel(hstep=40).values, rtol=0, atol=1e-12)
    read = density(path, replica=1)
    assert read.attrs["method"] == "dense" and read.attrs["nodes_from"] == "recorded"


def test_the_dense_recording_resumes_to_the_same_numbers(tmp_path):
    full = xr.open_zarr(record(CFG, tmp_path / "full.zarr"))
    again = xr.open_zarr(crash_and_resume(CFG, tmp_path / "cut.zarr", after=30))  # after the flush at step 20
    for name in ("slq_nodes", "trace", "lambda_min"):
        np.testing.assert_array_equal(full[name].values, again[name].values, err_msg=name)


def test_slq_asked_for_is_kept_and_auto_follows_the_size(tmp_path):
    ds = xr.open_zarr(record(replace(CFG, density_method="slq", steps=20), tmp_path / "s.zarr"))
    assert ds.attrs["density_method"] == "slq" and ds.slq_nodes.shape[2:] == (CFG.density_vectors, 10)
    assert CFG.dense_spectrum(DENSE_SPECTRUM_BELOW) and not CFG.dense_spectrum(DENSE_SPECTRUM_BELOW + 1)
    assert replace(CFG, density_method="dense").dense_spectrum(10**6)
    assert not replace(CFG, density_method="slq").dense_spectrum(3)
    # a replay of an SLQ recording asked for dense: the exact measure beside the recorded estimate
    exact = density(tmp_path / "s.zarr", replica=0, method="dense")
    assert exact.attrs["method"] == "dense" and exact.attrs["nodes_from"] == "replayed"
    assert exact.nodes.shape[1:] == (1, int(ds.attrs["num_params"]))


def test_a_dense_spectrum_of_a_large_network_is_one_line():
    with pytest.raises(LandscapeError, match="at most 4096 parameters"):
        prepare(replace(CFG, density_method="dense", width=1500))
    with pytest.raises(LandscapeError):
        replace(CFG, density_method="exact").validate()


def test_the_bottom_pairs_of_a_diverged_replica_are_nan():
    eng = build.engine(CFG, build.dataset(CFG))
    theta = eng.init([0, 1]).clone()
    theta[1] = float("nan")
    b = quantities.dense_bottom(eng, theta, 0, 2)
    assert torch.isnan(b.eigvals[1]).all() and torch.isfinite(b.eigvals[0]).all()
    assert not b.converged[1].any()


def test_a_spectrum_step_forms_the_hessian_once_and_keeps_nothing_after(tmp_path, monkeypatch):
    """Trace, density and bottom pairs of one spectrum step share one formation (with the
    eigenvectors the bottom pairs need), and the remembered answer (R · n² numbers) is gone
    once the step is written."""
    calls, real = [], dense.spectrum

    def counted(*args, **kw):
        calls.append(kw.get("vectors", args[5] if len(args) > 5 else False))
        return real(*args, **kw)

    monkeypatch.setattr(dense, "spectrum", counted)
    spectrum_steps = xr.open_zarr(record(CFG, tmp_path / "r.zarr")).sizes["hstep"]
    assert len(calls) == spectrum_steps and all(calls)
    assert quantities._last == {}
    calls.clear()
    record(replace(CFG, bottom_k=0), tmp_path / "nb.zarr")  # no bottom pairs: no eigenvectors formed
    assert len(calls) == spectrum_steps and not any(calls)
