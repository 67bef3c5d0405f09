"""The run store: layout, size, resume-state slots, trimming and refusals."""

import numpy as np
import pytest
import zarr

from landscape import LandscapeError
from landscape.config.run import RunConfig
from landscape.store.run import RunStore, check_out, layout, nbytes, open_dataset

CFG = RunConfig(etas=(0.5, 1.0), seeds=(0,), steps=120, hessian_every=10, save_params_every=40, chunk_steps=40)


@pytest.fixture
def store(tmp_path):
    from landscape.dynamics.iterates import directions

    return RunStore.create(
        tmp_path / "s.zarr", CFG, num_classes=3, num_params=11, data_source="test", iter_dirs=directions(11)
    )


def test_created_arrays_are_the_layout(store):
    lay = layout(CFG, 3, 11)
    g = zarr.open_group(str(store.path), mode="r")
    found = {}
    for name, arr in g.arrays():
        found[name] = arr
    found.update({f"state/{n}": a for n, a in g["state"].arrays()})
    assert set(found) == set(lay)
    for name, (dims, shape, chunks, _, _) in lay.items():
        assert found[name].shape == tuple(shape) and found[name].chunks == tuple(chunks), name
        if dims:
            assert list(found[name].metadata.dimension_names) == dims, name
    # the size estimate is what the arrays hold, counted independently from zarr's own metadata
    total = sum(int(np.prod(a.shape)) * (8 if a.dtype.kind in "OTU" else a.dtype.itemsize) for a in found.values())
    assert nbytes(CFG, 3, 11) == total
    assert store.config == CFG and store.status == "interrupted" and store.steps_done == 0


def test_checkpoint_slots_never_overwrite_the_last_flushed_one(store):
    R, n = 2, 11
    th = lambda v: np.full((R, n), float(v))
    store.write_ckpt(40, th(1), None)
    store.set_attrs(steps_done=40)
    store.write_ckpt(80, th(2), np.ones((R, 3, n)))  # the slot not holding step 40
    theta40, _, _ = store.read_ckpt(40, n)
    assert np.all(theta40 == 1)
    store.set_attrs(steps_done=80)
    store.write_ckpt(120, th(3), None)
    theta80, warm, _ = store.read_ckpt(80, n)
    assert np.all(theta80 == 2) and warm.shape == (R, 3, n)
    with pytest.raises(LandscapeError, match="no resume state for step 40"):
        store.read_ckpt(40, n)


def test_dataset_is_trimmed_to_the_flushed_steps(store):
    store.set_attrs(steps_done=40)
    ds = open_dataset(store.path)
    assert ds.sizes["step"] == 40 and ds.sizes["pstep"] == 1
    assert ds.sizes["hstep"] == len(CFG.hessian_steps(0, 40))
    assert RunStore.open(store.path).dataset(complete_only=False).sizes["step"] == 120


def test_refusals(tmp_path, store):
    with pytest.raises(LandscapeError, match="does not exist"):
        RunStore.open(tmp_path / "none.zarr")
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "f.txt").write_text("x")
    with pytest.raises(LandscapeError, match="is not a landscape store"):
        RunStore.open(tmp_path / "plain")
    with pytest.raises(LandscapeError, match="already exists"):
        check_out(store.path, overwrite=False)
    check_out(store.path, overwrite=True)  # a store may be replaced …
    with pytest.raises(LandscapeError, match="not a landscape store; refusing"):
        check_out(tmp_path / "plain", overwrite=True)  # … anything else never
    with pytest.raises(LandscapeError, match="does not exist"):
        check_out(tmp_path / "no" / "dir" / "x.zarr", overwrite=False)
    with pytest.raises(LandscapeError, match="is not an array"):
        store["state"]


def test_blocks_equal_to_the_fill_value_are_written_through_arrays_opened_earlier(store):
    """The recorder's array handles are opened once and kept: a block of all-NaN validation
    accuracy (no validation set) must still write its chunk files even when the array was first
    opened outside any write (zarr skips fill-value chunks unless the handle says otherwise),
    and the kept handles see the flushed data."""
    R, n, C = 2, 11, 3
    store["val_acc"], store["loss"]  # opened (and read) before any write, with zarr's default config
    _ = store["val_acc"][:, :40]
    nan = np.full((R, 40), np.nan)
    block = {name: nan for name in ("loss", "loss_static", "train_acc", "val_acc")}
    block.update(gamma=np.ones((R, 40, C)), params=np.zeros((R, 1, n)), eigvec=np.zeros((R, 1, 2, n)))
    k, hn = CFG.top_k, len(CFG.hessian_steps(0, 40))
    block.update(eigval=np.full((R, hn, k), np.nan), eigres=np.zeros((R, hn, k)), eigconv=np.zeros((R, hn, k), bool))
    store.write_block(0, 40, block)
    chunk = store.path / "val_acc" / "c" / "0" / "0"
    assert chunk.is_file() and (store.path / "loss" / "c" / "0" / "0").is_file()
    assert np.isnan(RunStore.open(store.path)["val_acc"][:, :40]).all()
    block["loss"] = np.arange(2 * 40, dtype=float).reshape(R, 40)
    store.write_block(0, 40, block)  # again through the kept handle
    np.testing.assert_array_equal(RunStore.open(store.path)["loss"][:, :40], block["loss"])


def _consolidated(path):
    import json

    return json.loads((path / "zarr.json").read_text()).get("consolidated_metadata")


@pytest.mark.parametrize("how", ["created", "reopened without a consolidated view"])
def test_attribute_updates_keep_the_consolidated_view_whole(store, how):
    """A flush's attribute update leaves the root's consolidated metadata equal to a fresh
    consolidation (xarray opens the store on them and sees the new attributes); a writer that
    opens a store whose view is missing refreshes it first."""
    import json

    import xarray as xr

    from landscape.store.run import consolidate

    s = store
    if how != "created":
        root = json.loads((s.path / "zarr.json").read_text())
        del root["consolidated_metadata"]
        (s.path / "zarr.json").write_text(json.dumps(root))
        s = RunStore.open(s.path, mode="r+")
    s.set_attrs(steps_done=40, status="running")
    kept = _consolidated(s.path)
    assert kept is not None
    consolidate(s.path)
    assert _consolidated(s.path) == kept
    ds = xr.open_zarr(str(s.path), consolidated=True)
    assert ds.attrs["steps_done"] == 40 and ds.attrs["status"] == "running"
    assert RunStore.open(s.path).steps_done == 40


@pytest.mark.slow
def test_parameter_vectors_are_chunked_along_param_and_still_resume_check_and_replay(tmp_path, tiny_cfg, monkeypatch):
    """With a chunk of 40 numbers (what 2**20 is to a 10⁶-parameter network) θ, eigenvectors
    and the resume slots are cut along `param`: a crash and resume equals the uninterrupted run
    bit for bit, `check` reads every piece and names a missing one, replay reads θ back."""
    from dataclasses import replace

    from landscape.recorders import record, resume
    from landscape.runs.opened import params_at
    from landscape.store import run as store_run
    from landscape.store.integrity import check
    from tests.recorders.test_record import assert_same_recording

    monkeypatch.setattr(store_run, "VECTOR_CHUNK", 40)
    cfg = replace(tiny_cfg, optimizer="momentum")  # its buffer beside θ, in the slots too
    ref = record(cfg, tmp_path / "ref.zarr")
    n = int(RunStore.open(ref).attrs["num_params"])
    assert n > 40
    for name, piece in (("params", 40), ("eigvec", 20), ("opt_v", 40), ("state/ckpt", 40)):
        assert RunStore.open(ref)[name].chunks[-1] == piece, name
    calls = []

    def boom(k):
        calls.append(k)
        if len(calls) == 120:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        record(cfg, tmp_path / "crash.zarr", progress=boom)
    resume(tmp_path / "crash.zarr")
    assert_same_recording(ref, tmp_path / "crash.zarr")
    report = check(ref)
    assert report.ok and report.chunks_read > 0
    stored = open_dataset(ref).params.values
    np.testing.assert_array_equal(params_at(ref, [50])[:, 0], stored[:, 1])  # θ_50 by replay = saved
    (ref / "params" / "c" / "0" / "1" / "1").unlink()  # one piece of θ_50 of replica 0
    (ref / "state" / "ckpt" / "c" / "0" / "0" / "1").unlink()  # one piece of a resume slot
    bad = {d.array: d.reason for d in check(ref).damaged}
    assert bad == {"params": "chunk file missing", "state/ckpt": "chunk file missing"}
