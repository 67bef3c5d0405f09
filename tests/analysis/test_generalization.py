from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from landscape.analysis.generalization import final_accuracies, late_change, summarize, width_reaching

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def test_final_accuracies_and_summary():
    runs = final_accuracies([SHIPPED])
    ds = xr.open_zarr(SHIPPED)
    np.testing.assert_array_equal(runs.val_acc.values, ds.val_acc.isel(step=-1).values)
    summ = summarize(runs)
    assert summ.sizes["condition"] == 2  # η = 0.5 and 1, two seeds each
    for i in range(2):
        s = summ.isel(condition=i)
        v = runs.val_acc.values[runs.eta.values == float(s.eta)]
        assert float(s.val_mean) == pytest.approx(v.mean())
        assert float(s.val_sem) == pytest.approx(v.std(ddof=1) / np.sqrt(2))


def table(rows, level=0.9):
    """A Fig. 3 summary from (loss, width, mean validation accuracy) rows."""
    n = len(rows)
    return xr.Dataset(
        {"val_mean": ("condition", np.array([r[2] for r in rows], float))},
        coords={
            "condition": np.arange(n),
            "loss_name": ("condition", np.array([r[0] for r in rows], dtype=object)),
            "width": ("condition", np.array([r[1] for r in rows])),
            "eta": ("condition", np.ones(n)),
            "amplitude": ("condition", np.full(n, 70.0)),
            "period": ("condition", np.full(n, 5000)),
        },
        attrs={"level": level},
    )


def reach(summary, loss):
    r = width_reaching(summary)
    i = list(r.loss_name.values).index(loss)
    return float(r.first_width[i]), float(r.crossing_width[i])


def test_width_reaching_interpolates_in_log_width():
    # DCE crosses 0.9 between 10 (0.8) and 40 (1.0): halfway in log width = 20; CE never does
    s = table([("dce", 40, 1.0), ("dce", 10, 0.8), ("dce", 5, 0.5), ("ce", 5, 0.4), ("ce", 10, 0.6), ("ce", 40, 0.85)])
    assert reach(s, "dce") == (40.0, pytest.approx(20.0))
    first, cross = reach(s, "ce")
    assert np.isnan(first) and np.isnan(cross)  # "nothing" is an answer


def test_width_reaching_edge_cases():
    # the smallest width already reaches it; a dip after the first crossing does not move it;
    # exactly at the level counts
    s = table([("a", 5, 0.95), ("a", 10, 0.7), ("b", 5, 0.3), ("b", 10, 0.9), ("b", 20, 0.6), ("b", 50, 0.99)])
    assert reach(s, "a") == (5.0, 5.0)
    assert reach(s, "b") == (10.0, pytest.approx(10.0))
    # another level, passed explicitly
    r = width_reaching(s, level=0.5)
    assert float(r.first_width[list(r.loss_name.values).index("b")]) == 10.0
    assert r.attrs["level"] == 0.5


def test_summary_counts_runs_reaching_the_level_and_the_late_change():
    runs = final_accuracies([SHIPPED])
    ds = xr.open_zarr(SHIPPED)
    before = ds.train_acc.isel(step=int(0.8 * (ds.sizes["step"] - 1))).values
    np.testing.assert_array_equal(runs.train_acc_before.values, before)
    summ = summarize(runs, level=0.5)
    for i in range(summ.sizes["condition"]):
        m = runs.eta.values == float(summ.eta[i])
        assert float(summ.val_reached[i]) == np.mean(runs.val_acc.values[m] >= 0.5)
        change = runs.train_acc.values[m] - before[m]
        assert float(summ.train_change[i]) == pytest.approx(change.mean())
    assert summ.attrs["level"] == 0.5


# late_change: closed-form series, none of them the runs the tolerance was chosen on
T = 1000
STEPS = np.arange(50 * T)
STATIC = 49 * T  # the last period static, as --static-last makes it


def oscillating(level, static_level, amplitude=0.1):
    """A converged run: the accuracy oscillates with Γ around `level`, then sits at `static_level`."""
    acc = level + amplitude * np.sin(2 * np.pi * STEPS / T) ** 3  # not a pure sine: a skewed oscillation
    return np.where(STEPS < STATIC, acc, static_level)


def test_late_change_of_a_converged_oscillating_run_is_zero_though_the_static_period_jumps():
    acc = oscillating(0.7, 0.9)
    drift, gain, settle = late_change(STEPS, acc, T, STATIC)
    assert drift == pytest.approx(0, abs=1e-12) and settle == 0.0
    assert gain == pytest.approx(0.2, abs=1e-12)  # what the static period adds, apart
    # the accuracy a fifth of the run earlier against the last one reads the jump as a change
    before = acc[int(0.8 * (STEPS.size - 1))]
    assert acc[-1] - before > 0.15
    # sampled every 100 steps, as a recorder with eval_every = 100 stores it: the same
    every = slice(0, None, 100)
    sampled = late_change(np.append(STEPS[every], STEPS[-1]), np.append(acc[every], acc[-1]), T, STATIC)
    np.testing.assert_allclose(sampled, (0, 0.2, 0), atol=1e-12)


def test_late_change_of_a_climbing_run_is_its_slope_over_a_fifth():
    slope = 1e-6
    acc = oscillating(0.5, 0.9) + slope * STEPS * (STEPS < STATIC)
    drift, gain, _ = late_change(STEPS, acc, T, STATIC)
    assert drift == pytest.approx(slope * round(STATIC / 5), rel=1e-9)  # period means: the oscillation cancels
    last_period_mean = 0.5 + slope * (STATIC - T + STATIC - 1) / 2
    assert gain == pytest.approx(0.9 - last_period_mean, rel=1e-9)


def test_late_change_of_a_static_period_still_moving_and_of_runs_without_one():
    acc = oscillating(0.6, 0.0) + np.where(STEPS >= STATIC, 0.6 + 1e-4 * (STEPS - STATIC), 0)
    _, _, settle = late_change(STEPS, acc, T, STATIC)
    assert settle == pytest.approx(1e-4 * ((STEPS[-1] - STATIC) - (STEPS[-1] - STATIC) // 2))
    # no static period: the drift of the whole run, gain and settle undefined
    flat = np.full(STEPS.size, 0.42)
    drift, gain, settle = late_change(STEPS, flat, T)
    assert drift == 0.0 and np.isnan(gain) and np.isnan(settle)
    # a diverged run (NaN from its stop on): nothing to compare, not a number made up
    dead = oscillating(0.6, 0.9)
    dead[STEPS >= 30 * T] = np.nan
    drift, gain, settle = late_change(STEPS, dead, T, STATIC)
    assert np.isnan(drift) and np.isnan(gain) and np.isnan(settle)


def test_summary_of_late_change_matches_the_runs():
    runs = final_accuracies([SHIPPED])
    ds = xr.open_zarr(SHIPPED)
    for r in range(ds.sizes["replica"]):  # recorded without --static-last: the whole run is dynamical
        drift, gain, settle = late_change(ds.step.values, ds.train_acc.values[r], int(ds.period[r]))
        assert runs.train_drift.values[r] == drift and np.isnan(gain) and np.isnan(settle)
    summ = summarize(runs)
    for i in range(summ.sizes["condition"]):
        m = runs.eta.values == float(summ.eta[i])
        assert float(summ.train_drift[i]) == pytest.approx(runs.train_drift.values[m].mean())
        assert np.isnan(summ.static_gain[i])


def test_the_command_prints_whether_the_runs_had_settled(tmp_path):
    from click.testing import CliRunner

    from landscape.app.cli import main

    r = CliRunner().invoke(main, ["analyze", "generalization", str(SHIPPED), "--fig", str(tmp_path / "g.png")])
    assert r.exit_code == 0, r.output
    header, *rows = r.output.splitlines()[:3]
    assert header.split()[-4:] == ["drift", "static", "gain", "settle"]
    summ = summarize(final_accuracies([SHIPPED]))
    for i, row in enumerate(rows):  # the shipped run has no static period: gain and settle undefined
        assert row.split()[-3:] == [f"{float(summ.train_drift[i]):+.3f}", "—", "—"]
