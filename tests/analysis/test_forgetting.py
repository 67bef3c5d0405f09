"""The forgetting measure: constructed per-class accuracy series with a known answer (a class
unlearned and relearned, nothing lost, a steady rise, noise, NaN gaps, an unfinished period)
and a recorded run against a brute-force reading of its own series."""

from dataclasses import replace

import numpy as np
import pytest

from landscape import LandscapeError
from landscape.analysis.forgetting import forgetting, largest_drop, per_period
from landscape.config.run import RunConfig
from landscape.recorders import record


def brute(acc: np.ndarray) -> float:
    """max over classes and i ≤ j of acc[i] − acc[j], by every pair (NaN rows dropped)."""
    a = acc[np.isfinite(acc).all(axis=1)]
    return max(float(a[i, c] - a[j, c]) for c in range(a.shape[1]) for i in range(len(a)) for j in range(i, len(a)))


def test_a_class_unlearned_and_relearned_each_period():
    T, K = 50, 4
    steps = np.arange(T * K)
    acc = np.full((len(steps), 3), 0.9)
    depth = [0.1, 0.6, 0.3, 0.8]
    for k in range(K):  # class k % 3 dips by depth[k] mid-period, then recovers
        mid = k * T + np.arange(20, 30)
        acc[mid, k % 3] -= depth[k]
    np.testing.assert_allclose(per_period(acc, steps, T), depth, atol=1e-12)


@pytest.mark.parametrize(
    "series, want",
    [
        (np.linspace(0.2, 1.0, 200), 0.0),  # learning only: no drop anywhere
        (np.full(200, 0.7), 0.0),  # nothing changes
        (np.linspace(1.0, 0.2, 200), 0.8 * 49 / 199),  # a steady fall: each period's own part of it
    ],
    ids=["rise", "flat", "steady fall"],
)
def test_the_answer_is_nothing_where_nothing_is_lost(series, want):
    acc = np.stack([series, np.full_like(series, 0.5)], axis=1)
    np.testing.assert_allclose(per_period(acc, np.arange(200), 50), want, atol=1e-12)


def test_noise_and_gaps_and_an_unfinished_period():
    rng = np.random.default_rng(3)
    steps = np.arange(230)
    acc = 0.8 + 0.01 * rng.standard_normal((230, 3))
    acc[::2] = np.nan  # between --eval-every steps
    d = per_period(acc, steps, 50)
    assert len(d) == 4  # 200 … 229 is not a whole period
    for k in range(4):
        assert d[k] == pytest.approx(brute(acc[k * 50 : (k + 1) * 50]), abs=1e-15)
    assert 0 < d.max() < 0.1  # noise drops are small; no forgetting
    assert np.isnan(largest_drop(np.full((5, 3), np.nan)))


def test_a_recorded_run_against_its_own_series(tmp_path):
    cfg = RunConfig(loss="dce", etas=(1.0, 2.0), amplitudes=(20.0,), periods=(40,), seeds=(0,), width=10,
                    steps=200, hessian_every=40, save_params_every=40, chunk_steps=40, n_per_class=20,
                    static_last=True, class_accuracy=True, eval_every=2)  # fmt: skip
    path = record(cfg, tmp_path / "r.zarr")
    import xarray as xr

    ds = xr.open_zarr(path)
    out = forgetting(path)
    for r in range(2):
        acc = ds.class_val_acc.values[r]
        d = [brute(acc[k * 40 : (k + 1) * 40]) for k in range(4)]  # the fifth period is static
        assert out.periods.values[r] == 4
        assert out.forgetting.values[r] == pytest.approx(np.mean(d), abs=1e-15)
        assert out.worst.values[r] == pytest.approx(max(d), abs=1e-15)
    train = forgetting(path, "class_train_acc")
    assert train.attrs["variable"] == "class_train_acc" and np.isfinite(train.forgetting.values).all()
    plain = record(replace(cfg, class_accuracy=False), tmp_path / "plain.zarr")
    with pytest.raises(LandscapeError, match="record with --class-accuracy"):
        forgetting(plain)


def test_the_command_prints_saves_and_refuses_in_one_line(tmp_path):
    from click.testing import CliRunner

    from landscape.app.cli import main
    from landscape.store.results import open_complete

    cfg = RunConfig(loss="dce", etas=(1.0,), amplitudes=(20.0,), periods=(40,), seeds=(0,), width=10,
                    steps=120, hessian_every=40, save_params_every=40, chunk_steps=40, n_per_class=20,
                    class_accuracy=True)  # fmt: skip
    path = record(cfg, tmp_path / "r.zarr")
    r = CliRunner().invoke(main, ["analyze", "forgetting", str(path), "--out", str(tmp_path / "f.zarr")])
    assert r.exit_code == 0, r.output
    saved = open_complete(tmp_path / "f.zarr", "forgetting")
    assert float(saved.forgetting[0]) == pytest.approx(float(forgetting(path).forgetting[0]))
    plain = record(replace(cfg, class_accuracy=False), tmp_path / "plain.zarr")
    r = CliRunner().invoke(main, ["analyze", "forgetting", str(plain)])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "--class-accuracy" in r.output
