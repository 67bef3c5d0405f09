"""The recorded quantities, each declared once: whatever the registry declares is allocated in
the store, computed and flushed by the recorder, read by `landscape check`, named by `info`,
and recomputed from replayed θ to what was recorded; a quantity added to the registry alone
reaches all of them."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape.app.cli import main
from landscape.config.run import RunConfig
from landscape.curvature import quantities
from landscape.recorders import record
from landscape.runs.opened import Run
from landscape.store.integrity import check
from landscape.store.run import RunStore

BASE = RunConfig(
    loss="dmse1", etas=(0.3, 0.6), amplitudes=(5.0,), periods=(40,), seeds=(0,), width=6, steps=80,
    hessian_every=20, save_params_every=20, chunk_steps=40, n_per_class=10,
)  # fmt: skip
KNOBS = {"layer_spectra": True, "trace_samples": 8, "density_steps": 6, "bottom_k": 2, "grad_norm": True}


def test_every_declared_quantity_has_a_knob_and_arrays():
    names = [q.name for q in quantities.REGISTRY]
    assert len(set(names)) == len(names) and set(KNOBS) == {q.knob for q in quantities.REGISTRY}
    arrays = quantities.arrays()
    assert len(set(arrays)) == len(arrays)
    for q in quantities.REGISTRY:
        assert not q.enabled(BASE) and q.enabled(replace(BASE, **{q.knob: KNOBS[q.knob]}))


@pytest.mark.parametrize("q", quantities.REGISTRY, ids=lambda q: q.name)
def test_a_quantity_is_stored_checked_named_and_recomputed(tmp_path, q):
    cfg = replace(BASE, **{q.knob: KNOBS[q.knob]})
    path = record(cfg, tmp_path / "r.zarr")
    store = RunStore.open(path)
    n = store.attrs["num_params"]
    shapes = q.shapes(cfg, n, store.layers)
    H = len(cfg.hessian_steps())
    for name, (tail, dtype) in shapes.items():
        a = store[name]
        assert a.shape == (2, H, *tail) and str(a.dtype) == dtype, name
    others = set(quantities.arrays()) - set(shapes)
    assert not others & {name for name, _ in store.group.arrays()}  # nothing of the others
    rep = check(path, tuple(shapes))
    assert rep.ok and rep.chunks_read == len(shapes) * -(-H // max(1, len(cfg.hessian_steps(0, cfg.chunk_steps))))
    r = CliRunner().invoke(main, ["info", str(path)])
    assert r.exit_code == 0 and f"also       {q.describe(cfg)}" in r.output, r.output
    steps = [20, 61]
    again = Run.open(path).recompute(q.name, steps)
    for name, v in again.items():
        got = store[name].oindex[:, [int(np.searchsorted(cfg.hessian_steps(), s)) for s in steps]]
        if v.dtype == bool:
            np.testing.assert_array_equal(got, v, err_msg=name)
        else:
            np.testing.assert_allclose(got, v, rtol=1e-10, atol=1e-13, err_msg=name)


def test_the_gradient_norm_is_the_step_over_eta(tmp_path):
    """Gradient descent moves θ by −η∇F: ‖∇F_t‖ = ‖θ_{t+1} − θ_t‖ / η, from replayed θ alone."""
    cfg = replace(BASE, grad_norm=True)
    path = record(cfg, tmp_path / "r.zarr")
    run = Run.open(path)
    ds = run.ds
    for t in (20, 21, 60):
        th = run.params_at([t, t + 1])
        want = np.linalg.norm(th[:, 1] - th[:, 0], axis=1) / np.array(cfg.etas)
        got = ds.grad_norm.sel(hstep=t).values
        np.testing.assert_allclose(got, want, rtol=1e-9)


def test_a_diverged_replica_reads_nan_and_the_others_are_unchanged(small_data):
    from landscape.engines.mlp import MLPEngine
    from landscape.problem.mlp import MLPSpec

    spec = MLPSpec(2, 5, 3)
    eng = MLPEngine(spec, small_data, "dce", eta=[0.5, 0.5, 0.5], amplitude=[3.0] * 3, period=[20] * 3)
    theta = spec.init([0, 1, 2])
    sick = theta.clone()
    sick[1, 3] = float("nan")
    cfg = replace(BASE, **KNOBS)
    for q in quantities.REGISTRY:
        whole = q.compute(eng, theta, 4, [0, 1, 2], cfg, eng.gamma(4))
        part = q.compute(eng, sick, 4, [0, 1, 2], cfg, eng.gamma(4))
        for name, v in part.items():
            if v.dtype == torch.bool:
                assert not v[1].any(), name
            else:
                assert torch.isnan(v[1]).all(), name
            torch.testing.assert_close(v[[0, 2]], whole[name][[0, 2]], rtol=1e-10, atol=1e-12)


def test_a_quantity_declared_in_the_registry_alone_is_recorded(tmp_path, monkeypatch):
    """The cost of a new quantity: one declaration (here ‖θ_t‖, on the grad-norm knob) and
    nothing else: the store's layout, the recorder, check and info follow it."""
    norm = quantities.Quantity(
        "theta_norm",
        "grad_norm",
        (quantities.Array("theta_norm", (), "‖θ_t‖"),),
        sizes=lambda cfg, n, layers: {},
        compute=lambda engine, theta, t, seeds, cfg, G: {"theta_norm": theta.norm(dim=1)},
        describe=lambda cfg: "‖θ‖",
    )
    monkeypatch.setattr(quantities, "REGISTRY", (norm,))
    path = record(replace(BASE, grad_norm=True), tmp_path / "r.zarr")
    run = Run.open(path)
    steps = list(run.config.hessian_steps())
    want = np.linalg.norm(run.params_at(steps), axis=2)
    np.testing.assert_allclose(run.store["theta_norm"][...], want, rtol=1e-12)
    assert run.store["theta_norm"].attrs["long_name"] == "‖θ_t‖" and check(path).ok
    assert "also       ‖θ‖" in CliRunner().invoke(main, ["info", str(path)]).output
