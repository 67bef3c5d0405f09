"""Recording into the store: xarray view, crash safety, resume, replay."""

import json
import signal
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr

from landscape import LandscapeError
from landscape.curvature import quantities
from landscape.curvature.spectrum import top_k
from landscape.recorders import record, resume
from landscape.runs import build
from landscape.runs.opened import params_at
from landscape.store import run as store

COMPARED = (
    "loss",
    "loss_static",
    "train_acc",
    "val_acc",
    "gamma",
    "eigval",
    "eigres",
    "params",
    "eigvec",
    "iter_p",
    "iter_q",
    "iter_cos",
    "iter_proj",
)


def crash_and_resume(cfg, path, after: int = 120):
    """Record cfg into path, crash it after `after` progress calls, resume it: the store."""
    calls = []

    def boom(n):
        calls.append(n)
        if len(calls) == after:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        record(cfg, path, progress=boom)
    return resume(path)


def assert_same_recording(a, b):
    da, db = xr.open_zarr(a), xr.open_zarr(b)
    for name in COMPARED:
        np.testing.assert_array_equal(da[name].values, db[name].values, err_msg=name)


def test_store_opens_in_xarray_with_named_dimensions(tmp_path, tiny_cfg):
    out = record(tiny_cfg, tmp_path / "run.zarr")
    ds = xr.open_zarr(out)
    assert ds.attrs["status"] == "complete" and ds.attrs["steps_done"] == 200
    assert ds.loss.dims == ("replica", "step") and ds.sizes["step"] == 200
    assert ds.gamma.dims == ("replica", "step", "class")
    assert ds.eigval.dims == ("replica", "hstep", "eig") and ds.sizes["hstep"] == 40  # pairs (t, t + 1) every 10 steps
    assert ds.params.dims == ("replica", "pstep", "param") and ds.sizes["param"] == 51
    assert ds.eigvec.dims == ("replica", "pstep", "eig", "param")
    for c in ("seed", "eta", "amplitude", "period", "loss_name", "width"):
        assert ds[c].dims == ("replica",)
    assert sorted(zip(ds.seed.values.tolist(), ds.eta.values.tolist())) == [(0, 0.5), (0, 1.0), (1, 0.5), (1, 1.0)]
    # selection by coordinate works the way a notebook would use it
    one = ds.set_index(replica=["seed", "eta"]).sel(seed=1, eta=0.5)
    assert one.loss.shape == (200,) and np.isfinite(one.loss.values).all()
    cfg = json.loads(ds.attrs["config"])
    assert cfg["loss"] == "dce" and cfg["steps"] == 200
    assert set(ds.attrs["versions"]) >= {"torch", "zarr", "xarray", "landscape"}
    assert ds.eigconv.values.all() and (ds.eigres <= 1e-3 * abs(ds.eigval.isel(eig=0))).all()
    # the spectra are those of the loss at θ_t (checked against the stored parameters)
    from landscape.config.run import RunConfig

    c = RunConfig.from_json(ds.attrs["config"])
    eng = build.engine(c, build.dataset(c))
    import torch

    th = torch.tensor(ds.params.isel(pstep=2).values)
    ev = top_k(eng, th, 100, k=2, tol=1e-8).eigvals.numpy()
    np.testing.assert_allclose(ds.eigval.sel(hstep=100).values, ev, rtol=1e-5)


def test_replay_reproduces_saved_parameters(tmp_path, tiny_cfg):
    out = record(replace(tiny_cfg, save_params_every=10), tmp_path / "run.zarr")
    ds = xr.open_zarr(out)
    stored = ds.params.values  # every 10 steps
    # rebuild steps 10, 20, … from the store, using only the vectors saved every 50 steps
    cfg = replace(tiny_cfg, save_params_every=50)
    out2 = record(cfg, tmp_path / "coarse.zarr")
    steps = [10, 20, 30, 40, 60, 70, 190]
    got = params_at(out2, steps)
    for j, s in enumerate(steps):
        np.testing.assert_array_equal(got[:, j], stored[:, s // 10])
    sub = params_at(out2, [70], replicas=[2])
    np.testing.assert_array_equal(sub[0, 0], stored[2, 7])
    with pytest.raises(LandscapeError, match="step 200 out of range"):
        params_at(out2, [200])
    with pytest.raises(LandscapeError, match="replica 9 out of range"):
        params_at(out2, [5], replicas=[9])


@pytest.mark.parametrize("fused", [False, True])
def test_exception_mid_run_marks_failed_and_resume_completes(tmp_path, tiny_cfg, fused):
    """A crash keeps the flushed steps; the resume completes the store bit-identically to an
    uninterrupted run (for the fused step too: its arithmetic does not depend on the cutting)."""
    from landscape.engines import fused as fused_mod

    if fused and fused_mod.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    tiny_cfg = replace(tiny_cfg, step="fused" if fused else "eager")
    ref = record(tiny_cfg, tmp_path / "ref.zarr")
    calls = []

    def boom(n):  # progress is called after every step: crash in step 120, after two flushes
        calls.append(n)
        if len(calls) == 120:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        record(tiny_cfg, tmp_path / "crash.zarr", progress=boom)
    ds = store.open_dataset(tmp_path / "crash.zarr")
    assert ds.attrs["status"] == "failed" and "simulated crash" in ds.attrs["error"]
    assert ds.attrs["steps_done"] == 100 and ds.sizes["step"] == 100  # two flushes of 50 steps kept
    assert np.isfinite(ds.loss.values).all()
    resume(tmp_path / "crash.zarr")
    assert xr.open_zarr(tmp_path / "crash.zarr").attrs["status"] == "complete"
    assert_same_recording(ref, tmp_path / "crash.zarr")
    with pytest.raises(LandscapeError, match="already complete"):
        resume(tmp_path / "crash.zarr")


def test_float32_recording_and_open_dataset_trims(tmp_path, tiny_cfg):
    out = record(replace(tiny_cfg, dtype="float32", steps=120), tmp_path / "f32.zarr")
    ds = store.open_dataset(out)
    assert ds.sizes["step"] == 120 and ds.sizes["hstep"] == 24 and ds.sizes["pstep"] == 3
    assert np.isfinite(ds.eigval.values).all()


class DiskFull:
    """zarr's local writes (atomic: temp file + rename) fail with ENOSPC from the first write
    whose path contains `at` on, as when a file system fills up."""

    def __init__(self, monkeypatch, at: str):
        import zarr.storage._local as local

        self.at, self.full, self.orig = at, False, local._put
        monkeypatch.setattr(local, "_put", self.put)

    def put(self, path, value, exclusive=False):
        import errno

        self.full = self.full or self.at in str(path)
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.orig(path, value, exclusive=exclusive)


def test_disk_full_mid_run_is_one_line_and_the_store_resumes(tmp_path, tiny_cfg, monkeypatch):
    ref = record(tiny_cfg, tmp_path / "ref.zarr")
    out = tmp_path / "full.zarr"
    DiskFull(monkeypatch, at="loss/c/0/2")  # the third flush (steps 100..149) fails
    with pytest.raises(LandscapeError) as e:
        record(tiny_cfg, out)
    msg = str(e.value)
    assert "No space left on device" in msg and f"landscape record --resume {out}" in msg and "\n" not in msg
    monkeypatch.undo()  # space freed
    assert store.RunStore.open(out).steps_done == 100
    resume(out)
    assert_same_recording(ref, out)


def test_disk_full_at_creation_leaves_nothing(tmp_path, tiny_cfg, monkeypatch):
    DiskFull(monkeypatch, at="gamma/zarr.json")
    with pytest.raises(LandscapeError, match="cannot create .*No space left on device"):
        record(tiny_cfg, tmp_path / "none.zarr")
    assert not (tmp_path / "none.zarr").exists()


@pytest.mark.parametrize("when", ["mid-creation", "created"])
def test_a_signal_while_the_store_is_made_leaves_it_interrupted_and_resumable(tmp_path, tiny_cfg, monkeypatch, when):
    """Ctrl-C or a worker's SIGTERM can arrive while the store is being made, before the first
    step: the store is then whole and says 'interrupted' (never 'running' with no process on
    it), and resuming it equals an uninterrupted recording."""
    ref = record(tiny_cfg, tmp_path / "ref.zarr")
    out = tmp_path / "stopped.zarr"
    if when == "created":
        made = store.RunStore.create

        def create_then_signal(*a, **kw):
            s = made(*a, **kw)
            signal.raise_signal(signal.SIGINT)
            return s

        monkeypatch.setattr(store.RunStore, "create", create_then_signal)
    else:
        calls = []
        real = zarr.Group.create_array

        def signal_on_the_third_array(self, *a, **kw):
            calls.append(1)
            if len(calls) == 3:
                signal.raise_signal(signal.SIGINT)
            return real(self, *a, **kw)

        monkeypatch.setattr(zarr.Group, "create_array", signal_on_the_third_array)
    with pytest.raises(KeyboardInterrupt):
        record(tiny_cfg, out)
    monkeypatch.undo()
    assert store.RunStore.open(out).status == "interrupted" and store.RunStore.open(out).steps_done == 0
    resume(out)
    assert_same_recording(ref, out)


def test_resume_refuses_changed_data(tmp_path, tiny_cfg):
    from landscape.problem.data import save_dataset, spiral_dataset

    f = tmp_path / "d.npz"
    save_dataset(spiral_dataset(10, seed=0, val_seed=1), f)
    cfg = replace(tiny_cfg, data=str(f))
    out = record(cfg, tmp_path / "run.zarr")
    g = store.RunStore.open(out, mode="r+")
    g.set_attrs(status="interrupted", steps_done=100)
    save_dataset(spiral_dataset(10, seed=5, val_seed=1), f)  # same shapes, other points
    before = {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()}
    with pytest.raises(LandscapeError, match="the data differ from those the run was recorded on"):
        resume(out)
    assert {p: p.read_bytes() for p in Path(out).rglob("*") if p.is_file()} == before


def test_layer_spectra_and_trace_are_recorded_resumed_and_checkable(tmp_path, tiny_cfg):
    """--layer-spectra and --trace-samples: stored at the spectrum steps, equal to the engine's
    own computation at the stored θ, bounded by λ1, and kept through a crash and resume."""
    import torch

    from landscape.config.run import RunConfig
    from landscape.store.integrity import check
    from tests import reference

    cfg = replace(tiny_cfg, layer_spectra=True, trace_samples=8, depth=2, hessian_every=50, density_method="slq")
    ref = record(cfg, tmp_path / "ref.zarr")
    ds = xr.open_zarr(ref)
    assert list(ds.layer.values) == ["fc1", "fc2", "fc3"]
    assert ds.layer_eigval.dims == ("replica", "hstep", "layer") and ds.trace.dims == ("replica", "hstep")
    assert np.isfinite(ds.layer_eigval.values).all() and np.isfinite(ds.trace_se.values).all()
    assert (ds.layer_eigval.values <= ds.eigval.values[..., :1] * (1 + 1e-3) + 1e-9).all()  # interlacing
    c = RunConfig.from_json(ds.attrs["config"])
    eng = build.engine(c, build.dataset(c))
    th = torch.tensor(ds.params.isel(pstep=2).values)  # θ at step 100, a spectrum step
    seeds = list(ds.seed.values)
    layers = quantities.layer_spectra(eng, th, 100, seeds, c.eig_tol, c.eig_max_iter, seed=100)
    np.testing.assert_allclose(ds.layer_eigval.sel(hstep=100).values, layers.eigvals.numpy(), rtol=1e-12)
    tr = quantities.trace(eng, th, 100, 8, seeds, seed=100)
    np.testing.assert_allclose(ds.trace.sel(hstep=100).values, tr.estimate.numpy(), rtol=1e-12)
    H = reference.dense_hessian(eng, th, 100, 0)
    assert abs(float(ds.trace.sel(hstep=100)[0]) - np.trace(H)) < 5 * float(ds.trace_se.sel(hstep=100)[0])
    assert check(ref).ok
    a, b = xr.open_zarr(ref), xr.open_zarr(crash_and_resume(cfg, tmp_path / "crash.zarr"))
    for name in ("layer_eigval", "layer_eigres", "trace", "trace_se", *COMPARED):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_density_and_bottom_are_recorded_resumed_and_replayed(tmp_path, tiny_cfg):
    """--density-steps/--density-vectors and --bottom-k: at a spectrum step the recorded
    quadrature reproduces the moments vᵀHᵏv of the dense float64 Hessian for the same vectors
    (k ≤ 2M − 1), λ_min is the dense one's, `analysis.spectra.density` recomputed by replay
    gives the recorded nodes, and a crash and resume changes nothing."""
    from landscape.analysis.spectra import density
    from landscape.config.run import RunConfig
    from landscape.curvature.density import probes
    from landscape.store.integrity import check
    from tests import reference

    M, V = 6, 3
    cfg = replace(tiny_cfg, density_steps=M, density_vectors=V, bottom_k=2, hessian_every=50, density_method="slq")
    ref = record(cfg, tmp_path / "ref.zarr")
    ds = xr.open_zarr(ref)
    assert ds.slq_nodes.dims == ("replica", "hstep", "vec", "node") and ds.lambda_min.dims == (
        "replica",
        "hstep",
        "bottom",
    )
    assert ds.slq_nodes.shape[2:] == (V, M) and np.isfinite(ds.slq_nodes.values).all()
    assert ds.lambda_min_conv.values.all()
    c = RunConfig.from_json(ds.attrs["config"])
    eng = build.engine(c, build.dataset(c))
    t, r = 100, 1
    th = torch.tensor(ds.params.isel(pstep=2).values)  # θ at step 100, a spectrum step
    H = torch.as_tensor(reference.dense_hessian(eng, th, t, r))
    w = torch.linalg.eigvalsh(H)
    np.testing.assert_allclose(ds.lambda_min.sel(hstep=t).values[r], w[:2].numpy(), atol=1e-3 * float(w.abs().max()))
    v = probes([int(ds.seed.values[r])], V, H.shape[0], salt=t)[0]
    N, W = ds.slq_nodes.sel(hstep=t).values[r], ds.slq_weights.sel(hstep=t).values[r]
    for k in range(2 * M):
        want = torch.einsum("vn,nm,vm->v", v, torch.linalg.matrix_power(H, k), v).numpy()
        np.testing.assert_allclose((W * N**k).sum(-1), want, rtol=0, atol=1e-10 * float(w.abs().max()) ** k, err_msg=k)
    read = density(ref, replica=r)
    again = density(ref, replica=r, recompute=True)
    assert (read.attrs["nodes_from"], again.attrs["nodes_from"]) == ("recorded", "replayed")
    np.testing.assert_allclose(again.nodes.values, read.nodes.values, rtol=0, atol=1e-9 * float(w.abs().max()))
    np.testing.assert_allclose(again.lambda_min.values, read.lambda_min.values, rtol=0, atol=1e-9)
    assert check(ref).ok
    b = xr.open_zarr(crash_and_resume(cfg, tmp_path / "crash.zarr"))
    for name in ("slq_nodes", "slq_weights", "lambda_min", "lambda_min_res", "lambda_min_conv", *COMPARED):
        np.testing.assert_array_equal(ds[name].values, b[name].values, err_msg=name)


def test_eval_every_skips_only_validation(tmp_path, tiny_cfg):
    """--eval-every k: val_acc at multiples of k and at the last step equals the every-step
    recording's, NaN between; every other array is bit for bit the same (the update never
    reads the validation pass)."""
    ref = record(tiny_cfg, tmp_path / "ref.zarr")
    got = record(replace(tiny_cfg, eval_every=7), tmp_path / "k7.zarr")
    a, b = xr.open_zarr(ref), xr.open_zarr(got)
    for name in COMPARED:
        if name != "val_acc":
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    steps = np.arange(tiny_cfg.steps)
    kept = (steps % 7 == 0) | (steps == tiny_cfg.steps - 1)
    np.testing.assert_array_equal(b.val_acc.values[:, kept], a.val_acc.values[:, kept])
    assert np.isnan(b.val_acc.values[:, ~kept]).all()
    assert np.isfinite(a.val_acc.values).all()


def test_eval_every_must_be_positive(tmp_path, tiny_cfg):
    with pytest.raises(LandscapeError, match="eval-every must be >= 1"):
        record(replace(tiny_cfg, eval_every=0), tmp_path / "x.zarr")
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("how", [pytest.param("compile", marks=pytest.mark.slow), "fused"])
def test_compiled_or_fused_recording_tracks_the_eager_one_and_replays(tmp_path, how):
    """--compile (inductor) and --fused (the C++ loops): the reference problem (width 100, 300
    points) for 1000 steps at the edge of stability (DCE, η = 1, A = 70) stays within 1e-12 of
    the eager recording in float64; its segments (cut at every 20th step for validation, at
    the spectra and saves) are replayed through the same step cut into other segments, bit
    for bit."""
    from landscape.config.run import RunConfig
    from landscape.engines import fused

    if how == "fused" and fused.compiler() is None:
        pytest.skip("no C++ compiler on this machine")
    cfg = RunConfig(
        loss="dce",
        etas=(1.0,),
        amplitudes=(70.0,),
        periods=(400,),
        seeds=(0, 1),
        steps=1000,
        hessian_every=250,
        save_params_every=250,
        chunk_steps=250,
        eval_every=20,
    )
    fast_cfg = replace(cfg, step=how)
    eager = record(cfg, tmp_path / "eager.zarr")
    fast = record(fast_cfg, tmp_path / "fast.zarr")
    a, b = xr.open_zarr(eager), xr.open_zarr(fast)
    np.testing.assert_allclose(b.params.values, a.params.values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.loss.values, a.loss.values, rtol=1e-12, atol=0)
    # validation every 20 steps and at the last, NaN between; the same points to rounding of the logits
    np.testing.assert_allclose(b.val_acc.values, a.val_acc.values, rtol=0, atol=1 / 150)
    assert np.isfinite(b.val_acc.values[:, ::20]).all() and np.isnan(b.val_acc.values[:, 1:20]).all()
    np.testing.assert_allclose(b.eigval.values, a.eigval.values, rtol=1e-3)
    # replay = the recorder's arithmetic: θ_500 → θ_750 by advance, bit for bit
    eng = build.engine(fast_cfg, build.dataset(cfg))
    th = eng.advance(torch.as_tensor(b.params.values[:, 2]), 500, 750)
    np.testing.assert_array_equal(th.numpy(), b.params.values[:, 3])


def test_dense_spectra_knob_records_exact_eigenpairs(tmp_path, tiny_cfg):
    """--eig-dense-below: a 51-parameter network's recorded spectra are the whole Hessian's
    (residuals at rounding level, n products), within the solver's tolerance of the Krylov
    recording; every other array unchanged bit for bit."""
    ref = xr.open_zarr(record(tiny_cfg, tmp_path / "ref.zarr"))
    dense = xr.open_zarr(record(replace(tiny_cfg, eig_dense_below=51), tmp_path / "dense.zarr"))
    np.testing.assert_allclose(dense.eigval.values, ref.eigval.values, rtol=2e-3)
    assert np.nanmax(dense.eigres.values) < 1e-10 <= np.nanmax(ref.eigres.values)
    np.testing.assert_array_equal(dense.params.values, ref.params.values)
    with pytest.raises(LandscapeError, match="eig-dense-below must be between 0 and 4096"):
        record(replace(tiny_cfg, eig_dense_below=-1), tmp_path / "bad.zarr")


def test_threads_knob_sets_the_recorders_threads_and_changes_nothing_else(tmp_path, tiny_cfg):
    import torch as th

    before = th.get_num_threads()
    try:
        ref = record(replace(tiny_cfg, threads=2), tmp_path / "ref.zarr")
        assert th.get_num_threads() == 2
        one = record(tiny_cfg, tmp_path / "one.zarr")  # the default: one thread
        assert th.get_num_threads() == 1
        da, db = xr.open_zarr(ref), xr.open_zarr(one)
        # to rounding, not bit for bit: the eager step's GEMMs may split their sums differently
        # with another thread count (seen at 6.7e-16 on a loaded machine); the fused step's order
        # is fixed, and its bit-identity across thread counts is test_fused's
        for name in COMPARED:
            a, b = da[name].values, db[name].values
            if name in ("eigval", "eigres", "eigvec"):
                atol = 1e-12 if name != "eigres" else 1e-9
                np.testing.assert_allclose(np.abs(a), np.abs(b), rtol=1e-9, atol=atol, err_msg=name)
            elif a.dtype.kind == "f":  # a cosine of two tiny second differences carries their rounding
                np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-6 if name == "iter_cos" else 1e-10, err_msg=name)
            else:
                np.testing.assert_array_equal(a, b, err_msg=name)
    finally:
        th.set_num_threads(before)
    with pytest.raises(LandscapeError, match="threads must be from 0"):
        record(replace(tiny_cfg, threads=-1), tmp_path / "bad.zarr")


@pytest.mark.parametrize("every, pe, chunk, steps", [(1, 4, 8, 20), (7, 4, 8, 20), (25, 10, 20, 53), (3, 6, 6, 6)])
def test_segments_cut_at_every_event_and_only_there(every, pe, chunk, steps):
    """The recorder's segments tile each chunk; each starts at the chunk's start, a spectrum,
    a saved θ, a validation step or the last step, and no such event lies inside one."""
    from landscape.config.run import RunConfig
    from recorders.record import _segments

    cfg = RunConfig(steps=steps, hessian_every=2, save_params_every=pe, chunk_steps=chunk, eval_every=every)
    for t in range(0, steps, chunk):
        b = min(t + chunk, steps)
        hsteps = set(cfg.hessian_steps(t, b).tolist())
        segs = [(s, e) for s, e, _ in _segments(cfg, t, b, hsteps)]
        assert [s for s, _ in segs][0] == t and segs[-1][1] == b
        assert all(e > s for s, e in segs) and all(segs[i][1] == segs[i + 1][0] for i in range(len(segs) - 1))
        events = {s for s in range(t, b) if s in hsteps or s % pe == 0 or s % every == 0 or s == steps - 1}
        assert {s for s, _ in segs} == events | {t}
        # validation where the old per-step rule put it: every eval_every-th step and the last
        assert {s for s, _, v in _segments(cfg, t, b, hsteps) if v} == {
            s for s in range(t, b) if s % every == 0 or s == steps - 1
        }
