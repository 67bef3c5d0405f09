"""The iterates' period-2 signal: its formulas against an explicit loop, the tracker however the
steps are cut, and every engine's recording against an independent replay of its θ."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from landscape.config.run import RunConfig
from landscape.dynamics.iterates import NUM_DIRS, Tracker, directions, from_trajectory
from landscape.recorders import record
from landscape.runs.opened import iterate_signals, params_at


def explicit(th: np.ndarray, U: np.ndarray):
    """‖p_t‖, ‖p_t − p_{t−1}‖, cos(p_t, p_{t−1}) and U θ_t for a trajectory (N+1, n), one step at a time."""
    N = th.shape[0] - 1
    sc, pj = np.full((N, 3), np.nan), np.empty((N, U.shape[0]))
    for t in range(N):
        pj[t] = U @ th[t]
        if t >= 1:
            p = th[t + 1] - 2 * th[t] + th[t - 1]
            sc[t, 0] = np.sqrt(p @ p)
        if t >= 2:
            pp = th[t] - 2 * th[t - 1] + th[t - 2]
            sc[t, 1] = np.sqrt((p - pp) @ (p - pp))
            sc[t, 2] = (p @ pp) / np.sqrt((p @ p) * (pp @ pp))
    return sc, pj


def test_formulas_against_an_explicit_loop():
    rng = np.random.default_rng(0)
    th = np.cumsum(rng.standard_normal((40, 7)), axis=0) + np.outer((-1.0) ** np.arange(40), rng.standard_normal(7))
    U = directions(7)
    sc, pj = from_trajectory(th, U)
    want_sc, want_pj = explicit(th, U)
    np.testing.assert_allclose(sc, want_sc, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(pj, want_pj, rtol=1e-12)
    assert np.isnan(sc[0]).all() and np.isnan(sc[1, 1:]).all() and np.isfinite(sc[2:]).all()


def test_directions_are_fixed_unit_vectors():
    U = directions(50)
    assert U.shape == (NUM_DIRS, 50)
    np.testing.assert_allclose(np.linalg.norm(U, axis=1), 1.0)
    np.testing.assert_array_equal(U, directions(50))


def test_a_bounce_has_cos_minus_one_and_a_drift_plus_one():
    t = np.arange(30.0)[:, None]
    v = np.array([[0.6, 0.8]])
    bounce = 1e-3 * t * np.array([[1.0, 0.0]]) + 0.1 * (-1) ** t * v
    curve = np.hstack([np.cos(0.01 * t), np.sin(0.01 * t)])  # p turns by 0.01 rad a step
    assert np.allclose(from_trajectory(bounce)[0][2:, 2], -1)
    np.testing.assert_allclose(from_trajectory(curve)[0][2:, 2], np.cos(0.01), atol=1e-9)
    np.testing.assert_allclose(from_trajectory(bounce)[0][2:, 0], 0.4)  # 4a‖v‖


@pytest.mark.parametrize("ring", [1, 2, 5, 64])
def test_tracker_gives_the_same_signals_however_it_is_fed(ring):
    rng = np.random.default_rng(1)
    th = torch.as_tensor(np.cumsum(rng.standard_normal((50, 3, 6)), axis=0))
    U = torch.as_tensor(directions(6))
    want = from_trajectory(th.numpy(), U.numpy())
    tr = Tracker(th[0], 0, U, ring=ring)
    for t in range(1, 51 - 10):
        tr.push(th[t])
    a_sc, a_pj = tr.take(0, 20)
    for t in range(41, 50):
        tr.push(th[t])
    b_sc, b_pj = tr.take(20, 49)
    np.testing.assert_allclose(np.concatenate([a_sc, b_sc], axis=1), want[0].transpose(1, 0, 2), equal_nan=True)
    np.testing.assert_allclose(np.concatenate([a_pj, b_pj], axis=1), want[1].transpose(1, 0, 2))
    with pytest.raises(RuntimeError):
        tr.take(0, 10)  # already handed out


@pytest.mark.slow
@pytest.mark.parametrize("how", ["eager", "fused", "generic"])
def test_each_engine_records_the_signals_of_its_own_trajectory(tmp_path, tiny_cfg, how, monkeypatch):
    """Against an independent replay: θ at every step by `params_at`, the signals by the explicit loop."""
    cfg = replace(tiny_cfg, steps=120, chunk_steps=50, save_params_every=50)
    if how == "fused":
        cfg = replace(cfg, step="fused", eval_every=7)
    if how == "generic":  # the digits CNN through torch.func (run from the repository root)
        root = Path(__file__).resolve().parents[3]
        cfg = replace(cfg, width=RunConfig.width, model="examples.cnn:make", model_args=("channels=2",))
        cfg = replace(cfg, data=str(root / "data/digits.npz"))
        monkeypatch.chdir(root)
    out = record(cfg, tmp_path / "r.zarr")
    ds = xr.open_zarr(out)
    th = params_at(out, list(range(cfg.steps)), None)
    U = ds.iter_dirs.values
    for r in range(th.shape[0]):
        traj = np.concatenate([th[r], _next(out, cfg, r)[None]])
        want_sc, want_pj = explicit(traj, U)
        got = np.stack([ds.iter_p.values[r], ds.iter_q.values[r], ds.iter_cos.values[r]], axis=-1)
        np.testing.assert_allclose(got, want_sc, rtol=1e-9, atol=1e-15, equal_nan=True)
        np.testing.assert_allclose(ds.iter_proj.values[r], want_pj, rtol=1e-9, atol=1e-12)


def _next(out, cfg, r):
    """θ after the last step, from the store's resume state (written at steps_done)."""
    from landscape.store.run import RunStore

    st = RunStore.open(out)
    theta, _, _ = st.read_ckpt(cfg.steps, st.attrs["num_params"])
    return theta[r]


def test_an_older_store_gets_its_signals_by_exact_replay(tmp_path, tiny_cfg):
    """A store recorded before the signals (here: their arrays and attribute removed, the schema
    version set back to 1, which such a store carries) is replayed to the same numbers the
    recorder wrote."""
    import shutil

    import zarr

    out = record(tiny_cfg, tmp_path / "r.zarr")
    rec_sc, rec_pj, replayed = iterate_signals(out)
    assert not replayed
    g = zarr.open_group(str(out), mode="r+")
    for name in ("iter_p", "iter_q", "iter_cos", "iter_proj", "iter_dirs", "proj"):
        shutil.rmtree(out / name)
    del g.attrs["iterate_signals"]
    del g.attrs["ckpt_vectors"]
    g.attrs["landscape_schema"] = 1
    sc, pj, replayed = iterate_signals(out)
    assert replayed
    np.testing.assert_array_equal(sc, rec_sc)
    np.testing.assert_array_equal(pj, rec_pj)


# a resumed recording continues the signals bit for bit: tests/recorders/test_record.py's crash test
# compares iter_* of a crashed-and-resumed store with an uninterrupted one (eager and fused)
