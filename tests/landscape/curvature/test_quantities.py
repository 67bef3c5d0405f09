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
KNOBS = {"layer_spectra": True, "trace_samples": 8, "density_steps": 6, "bottom_k": 2, "grad_norm": True,
         "ggn_k": 2, "precond_k": 2, "class_accuracy": True}  # fmt: skip
NEEDS = {"precond_k": dict(optimizer="adam", etas=(0.01, 0.02))}  # what a quantity's knob goes with


def test_every_declared_quantity_has_a_knob_and_arrays():
    names = [q.name for q in quantities.REGISTRY]
    assert len(set(names)) == len(names) and set(KNOBS) == {q.knob for q in quantities.REGISTRY}
    arrays = quantities.arrays()
    assert len(set(arrays)) == len(arrays)
    for q in quantities.REGISTRY:
        assert not q.enabled(BASE) and q.enabled(replace(BASE, **{q.knob: KNOBS[q.knob]}, **NEEDS.get(q.knob, {})))


@pytest.mark.parametrize("q", quantities.REGISTRY, ids=lambda q: q.name)
def test_a_quantity_is_stored_checked_named_and_recomputed(tmp_path, q):
    cfg = replace(BASE, **{q.knob: KNOBS[q.knob]}, **NEEDS.get(q.knob, {}))
    path = record(cfg, tmp_path / "r.zarr")
    store = RunStore.open(path)
    n = store.attrs["num_params"]
    shapes = q.shapes(cfg, n, store.layers, 3)
    H = cfg.steps if q.at == "step" else len(cfg.hessian_steps())
    for name, (tail, dtype) in shapes.items():
        a = store[name]
        assert a.shape == (2, H, *tail) and str(a.dtype) == dtype, name
    others = set(quantities.arrays()) - set(shapes)
    assert not others & {name for name, _ in store.group.arrays()}  # nothing of the others
    rep = check(path, tuple(shapes))
    per_chunk = cfg.chunk_steps if q.at == "step" else max(1, len(cfg.hessian_steps(0, cfg.chunk_steps)))
    assert rep.ok and rep.chunks_read == len(shapes) * -(-H // per_chunk)
    r = CliRunner().invoke(main, ["info", str(path)])
    assert r.exit_code == 0 and f"also       {q.describe(cfg)}" in r.output, r.output
    steps = [20, 61]
    again = Run.open(path).recompute(q.name, steps)
    for name, v in again.items():
        at = steps if q.at == "step" else [int(np.searchsorted(cfg.hessian_steps(), s)) for s in steps]
        got = store[name].oindex[:, at]
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
    hyper = RunConfig(etas=(0.05,), seeds=(0, 1, 2), optimizer="adam").hyper()  # for the preconditioned spectrum
    eng = MLPEngine(spec, small_data, "dce", eta=[0.05] * 3, amplitude=[3.0] * 3, period=[20] * 3, optimizer="adam",
                    hyper=hyper)  # fmt: skip
    theta = spec.init([0, 1, 2])
    eng.advance(theta, 0, 4)  # the optimizer's state (its preconditioner) at step 4
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


@pytest.mark.parametrize("step", ["eager", "fused"])
def test_class_accuracies_weighted_by_the_class_counts_are_the_accuracy_exactly(step):
    """Unequal classes (7, 12 and 20 training points): each class's count of right answers,
    acc_c · n_c, is an integer, and they add up to the engine's own count (the fused step's
    comes from its C++ kernel); each class's accuracy is also an independent argmax of the
    plain forward pass (tests.reference.forward). Training and validation points alike."""
    from landscape.engines.mlp import MLPEngine
    from landscape.problem.data import Dataset, spiral_dataset
    from landscape.problem.mlp import MLPSpec
    from tests.reference import forward

    full = spiral_dataset(20, seed=0, val_seed=1)
    keep = np.concatenate([np.flatnonzero(full.y == c)[:m] for c, m in enumerate((7, 12, 20))])
    data = Dataset(full.X[keep], full.y[keep], full.X_val, full.y_val, 3, "spiral subset")
    spec = MLPSpec(2, 8, 3)
    eng = MLPEngine(spec, data, "dce", [0.7, 1.3], [5.0, 9.0], [20, 20], step=step)
    theta = spec.init([0, 1])
    for t in range(0, 60, 15):
        theta = eng.advance(theta, max(t - 15, 0), t) if t else theta
        for val, X, y in ((False, data.X, data.y), (True, data.X_val, data.y_val)):
            per = quantities.class_accuracy(eng, theta, val).numpy()
            n = np.bincount(y, minlength=3)
            right = per * n
            np.testing.assert_allclose(right, np.round(right), rtol=0, atol=1e-12)
            total = eng.accuracy(theta, val).numpy() * len(y)
            np.testing.assert_array_equal(np.round(right).sum(1), np.round(total))
            f = forward(spec, theta, torch.as_tensor(X)).argmax(-1).numpy()
            want = np.stack([[np.mean(f[r][y == c] == c) for c in range(3)] for r in range(2)])
            np.testing.assert_array_equal(per, want)


def test_class_accuracy_is_recorded_at_the_evaluated_steps_only(tmp_path):
    """--class-accuracy with --eval-every 5 over chunks of 40: finite at the evaluated steps
    (every fifth and the last), NaN between them; their count-weighted mean is the recorded
    accuracy (training every step evaluated, validation likewise)."""
    cfg = replace(BASE, class_accuracy=True, eval_every=5, step="fused")
    ds = Run.open(record(cfg, tmp_path / "r.zarr")).ds
    tr, va = ds.class_train_acc.values, ds.class_val_acc.values
    evaluated = sorted(set(range(0, cfg.steps, 5)) | {cfg.steps - 1})
    finite = np.isfinite(tr).all(axis=(0, 2))
    assert np.flatnonzero(finite).tolist() == evaluated
    assert np.flatnonzero(np.isfinite(va).all(axis=(0, 2))).tolist() == evaluated
    counts = np.bincount(Run.open(tmp_path / "r.zarr").data.y, minlength=3)
    mean = (tr[:, evaluated] * counts).sum(-1) / counts.sum()
    np.testing.assert_allclose(mean, ds.train_acc.values[:, evaluated], rtol=0, atol=1e-12)
    vcounts = np.bincount(Run.open(tmp_path / "r.zarr").data.y_val, minlength=3)
    vmean = (va[:, evaluated] * vcounts).sum(-1) / vcounts.sum()
    np.testing.assert_allclose(vmean, ds.val_acc.values[:, evaluated], rtol=0, atol=1e-12)
