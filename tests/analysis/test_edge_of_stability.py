from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from landscape.analysis.edge_of_stability import draw, escaped, summarize

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"
t = np.linspace(0, 1, 400)


def test_a_run_that_rides_the_edge_has_not_escaped():
    ride = 1 - 0.5 * np.exp(-20 * t)  # rises to 2/η and stays there
    noisy = ride + 0.04 * np.random.default_rng(0).standard_normal(t.size)  # and jitters around it
    assert not escaped(ride)[0] and not escaped(noisy)[0]


def test_a_run_that_leaves_for_a_wider_valley_has_escaped():
    leave = np.where(t < 0.6, 1.0, 0.6)
    slow = np.where(t < 0.3, 1.0, 1.0 - (t - 0.3))  # drifts down: below 0.9 well before the tail
    assert escaped(leave)[0] and escaped(slow)[0]
    assert escaped(np.vstack([leave, np.ones_like(t)])).tolist() == [True, False]


def test_no_edge_no_escape_and_spikes_and_gaps():
    # never reached the edge: nothing to escape from ("nothing" is the answer)
    assert not escaped(np.full(t.size, 0.5))[0]
    # a spike to the edge in the tail is not an escape; one spike earlier is a reach
    spike_late = np.where(t < 0.6, 1.0, 0.6)
    spike_late[-5] = 1.0
    assert not escaped(spike_late)[0]
    # missing spectra in the tail are skipped, an all-missing tail is not an escape
    gap = np.where(t < 0.6, 1.0, 0.6)
    gap[-10:-5] = np.nan
    assert escaped(gap)[0]
    gap[-40:] = np.nan
    assert not escaped(gap)[0]


def test_summary_against_the_store_read_directly():
    s = summarize([SHIPPED], every=50)
    raw = xr.open_zarr(SHIPPED)
    assert s.sizes["curve"] == 2 and list(s.eta.values) == [0.5, 1.0]
    for c in range(2):
        eta = float(s.eta[c])
        m = raw.eta.values == eta
        ratio = raw.eigval.isel(eig=0).values[m] * eta / 2
        np.testing.assert_allclose(s.ratio_mean[c], ratio.mean(0), rtol=1e-12)
        np.testing.assert_allclose(s.ratio_sem[c], ratio.std(0, ddof=1) / np.sqrt(m.sum()), rtol=1e-12)
        np.testing.assert_allclose(s.loss_mean[c], raw.loss.values[m][:, ::50].mean(0), rtol=1e-12)
        assert int(s.n_runs[c]) == m.sum()
        assert int(s.n_escaped[c]) == escaped(ratio).sum()
        assert float(s.final_train_acc[c]) == pytest.approx(raw.train_acc.values[m][:, -1].mean())
        # per run, in the store's order within the curve
        mine = s.run_curve.values == c
        np.testing.assert_array_equal(s.run_seed.values[mine], raw.seed.values[m])
        np.testing.assert_array_equal(s.run_train_acc.values[mine], raw.train_acc.values[m][:, -1])
        np.testing.assert_array_equal(s.run_escaped.values[mine], escaped(ratio))
        k = max(1, round(0.1 * ratio.shape[1]))
        np.testing.assert_allclose(s.run_tail_ratio.values[mine], ratio[:, -k:].mean(1), rtol=1e-12)
    assert s.sizes["run"] == raw.sizes["replica"] and s.attrs["steps"] == raw.sizes["step"]
    np.testing.assert_array_equal(s.hstep, raw.hstep)


def test_draw(tmp_path):
    files = draw(summarize([SHIPPED]), tmp_path / "f1.png")
    assert all(Path(f).stat().st_size > 1000 for f in files)
