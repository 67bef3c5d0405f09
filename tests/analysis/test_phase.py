"""The phase diagram's cells against an independent reading of constructed runs: the gain
and its standard error, significance (and none where the losses do equally well), the
instability and settled fractions; and the per-run table of a recorded sweep."""

import numpy as np
import pytest
import xarray as xr

from landscape.analysis.phase import cells, runs


def table(loss, amplitudes, periods, val, first=None, forget=None, drift=None):
    k = len(val)
    return xr.Dataset(
        {
            "val_acc": ("run", np.asarray(val, float)),
            "forgetting": ("run", np.zeros(k) if forget is None else np.asarray(forget, float)),
            "first_instability": ("run", np.full(k, np.nan) if first is None else np.asarray(first, float)),
            "train_drift": ("run", np.zeros(k) if drift is None else np.asarray(drift, float)),
            "static_settle": ("run", np.zeros(k)),
            "amplitude": ("run", np.asarray(amplitudes, float)),
            "period": ("run", np.asarray(periods)),
            "loss_name": ("run", np.array([loss] * k, dtype=object)),
            "width": ("run", np.full(k, 20)),
            "eta": ("run", np.ones(k)),
        }
    )


def test_cells_against_an_independent_reading():
    rng = np.random.default_rng(0)
    A, T, n = (2.0, 10.0, 70.0), (50, 1000), 6
    grid = [(a, t) for a in A for t in T for _ in range(n)]
    shift = {(2.0, 50): 0.2, (70.0, 1000): -0.15}
    val = np.array([0.6 + shift.get((a, t), 0.0) for a, t in grid]) + 0.02 * rng.standard_normal(len(grid))
    first = np.where(np.arange(len(grid)) % 3 == 0, 100.0, np.nan)
    forget = rng.uniform(0, 1, len(grid))
    drift = np.where(np.arange(len(grid)) % 4 == 0, 0.1, 0.0)
    dyn = table("dce", [a for a, _ in grid], [t for _, t in grid], val, first, forget, drift)
    sval = 0.6 + 0.02 * rng.standard_normal(n)
    static = table("ce", [1.0] * n, [1000] * n, sval)
    g = cells(dyn, static)
    s_mean, s_se = sval.mean(), sval.std(ddof=1) / np.sqrt(n)
    for i, a in enumerate(A):
        for j, t in enumerate(T):
            m = np.array([(x, y) == (a, t) for x, y in grid])
            v = val[m]
            gain, se = v.mean() - s_mean, np.sqrt(v.var(ddof=1) / n + s_se**2)
            assert float(g.gain[i, j]) == pytest.approx(gain, abs=1e-14)
            assert float(g.gain_sem[i, j]) == pytest.approx(se, rel=1e-12)
            assert bool(g.significant[i, j]) == (abs(gain) > 2 * se)
            assert float(g.unstable[i, j]) == pytest.approx(np.isfinite(first[m]).mean())
            assert float(g.forgetting[i, j]) == pytest.approx(forget[m].mean())
            assert float(g.settled[i, j]) == pytest.approx((np.abs(drift[m]) < 0.03).mean())
    assert bool(g.significant.sel(amplitude=2.0, period=50)) and float(g.gain.sel(amplitude=2.0, period=50)) > 0
    assert bool(g.significant.sel(amplitude=70.0, period=1000)) and float(g.gain.sel(amplitude=70.0, period=1000)) < 0


def test_no_cell_is_significant_where_the_losses_do_equally_well():
    """The same accuracies under both losses (a symmetric case): gain 0 everywhere, nothing outlined."""
    vals = np.array([0.55, 0.6, 0.62, 0.58])
    dyn = table("dce", [5.0] * 8, [50] * 4 + [200] * 4, np.concatenate([vals, vals[::-1]]))
    g = cells(dyn, table("ce", [1.0] * 4, [1000] * 4, vals))
    np.testing.assert_allclose(g.gain.values, 0.0, atol=1e-15)
    assert not g.significant.values.any()


def test_runs_reads_accuracy_forgetting_and_instability_of_each_replica(tmp_path):
    from landscape.analysis.first_instability import first_instabilities
    from landscape.analysis.forgetting import forgetting
    from landscape.config.run import RunConfig
    from landscape.recorders import record

    cfg = RunConfig(loss="dce", etas=(1.0,), amplitudes=(3.0, 30.0), periods=(40,), seeds=(0, 1), width=6,
                    steps=160, hessian_every=40, save_params_every=40, chunk_steps=40, n_per_class=15,
                    static_last=True, class_accuracy=True)  # fmt: skip
    path = record(cfg, tmp_path / "r.zarr")
    got = runs([str(path)])
    ds = xr.open_zarr(path)
    np.testing.assert_array_equal(got.val_acc.values, ds.val_acc.values[:, -1])
    np.testing.assert_array_equal(got.forgetting.values, forgetting(path).forgetting.values)
    np.testing.assert_array_equal(got.first_instability.values, first_instabilities([path]).first_instability.values)
    np.testing.assert_array_equal(got.amplitude.values, ds.amplitude.values)
