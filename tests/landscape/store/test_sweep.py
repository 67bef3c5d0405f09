"""The sweep store: index, batch status, and the grid view's refusals."""

import pytest

from landscape import LandscapeError
from landscape.config.run import RunConfig
from landscape.config.sweep import SweepSpec
from landscape.recorders import record
from landscape.store import sweep as sweep_store


def test_index_status_and_incomplete_batches(tmp_path):
    path = tmp_path / "s.zarr"
    spec = SweepSpec().replace(
        etas=(0.5,), widths=(4,), steps=20, hessian_every=10, chunk_steps=10, save_params_every=10, n_per_class=5
    )
    sweep_store.create(path, spec.to_json(), ["b000", "b001"])
    assert sweep_store.is_sweep(path) and not sweep_store.is_sweep(tmp_path)
    text, names = sweep_store.index(path)
    assert SweepSpec.from_json(text) == spec and names == ["b000", "b001"]
    assert sweep_store.batch_status(path, "b000") == "missing"
    cfg = RunConfig(
        etas=(0.5,), width=4, steps=20, hessian_every=10, chunk_steps=10, save_params_every=10, n_per_class=5
    )
    record(cfg, path / "b000")
    assert sweep_store.batch_status(path, "b000") == "complete"
    with pytest.raises(LandscapeError, match="batch b001 of .* is not complete"):
        sweep_store.open_sweep(path)
    with pytest.raises(LandscapeError, match="does not exist"):
        sweep_store.index(tmp_path / "none.zarr")
    with pytest.raises(LandscapeError, match="not a landscape sweep store"):
        sweep_store.index(path / "b000")


def test_open_sweep_is_quiet(tmp_path):
    """No FutureWarning (xarray's concat defaults) on every call: the arguments are explicit."""
    import warnings

    from landscape.recorders.sweep import sweep
    from tests.recorders.test_sweep import TINY

    path = sweep(SweepSpec().replace(**{**TINY, "losses": ("dce",)}), tmp_path / "s.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = sweep_store.open_sweep(path)
    assert ds.sizes["seed"] == 2
