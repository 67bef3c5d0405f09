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


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A real store (4 replicas, η = 0.5, 1, 1.5, 2: thresholds 4, 2, 4/3, 1) whose λ1(H) and
    λ1(GGN) are then overwritten with series of known answer, one per replica: a catapult (start
    above the edge, fall, sharpen back, hover), a plain rise to the edge, a run that never gets
    there, and a hover with a gap (NaN) in it."""
    import zarr

    from landscape.config.run import RunConfig
    from landscape.recorders import record

    cfg = RunConfig(loss="mse", etas=(0.5, 1.0, 1.5, 2.0), amplitudes=(1.0,), width=6, steps=200, hessian_every=10,
                    save_params_every=100, chunk_steps=100, n_per_class=10, ggn_k=2, hessian_pairs=False)  # fmt: skip
    p = record(cfg, tmp_path_factory.mktemp("s") / "run.zarr")
    H = 20
    ratio = np.empty((4, H))
    ratio[0] = np.r_[1.4, 0.6, 0.7, 0.8, 0.9, 0.97, 1.01, 0.99, 1.03, 0.98, np.full(10, 1.0)]
    ratio[1] = np.r_[np.linspace(0.3, 0.94, 12), 0.96, 1.02, 0.99, 1.0, 1.01, 0.98, 1.0, 1.0]
    ratio[2] = np.linspace(0.2, 0.9, H)
    ratio[3] = np.r_[0.5, 0.8, 0.95, 1.05, np.nan, 0.97, np.full(14, 1.0)]
    edge = 2 / np.array([0.5, 1.0, 1.5, 2.0])
    g = zarr.open_group(str(p), mode="r+")
    lam = ratio * edge[:, None]
    ev = g["eigval"][...]
    ev[:, :, 0] = lam
    g["eigval"][...] = ev
    gg = g["ggn_eigval"][...]
    gg[:, :, 0] = 0.9 * lam
    g["ggn_eigval"][...] = gg
    return p, ratio


def test_sharpening_finds_the_crossing_from_below_and_the_hover(planted):
    from landscape.analysis.edge_of_stability import sharpening

    p, ratio = planted
    t = sharpening([p], reach=0.95)
    hs = np.arange(0, 200, 10)
    want_at = [50, 120, -1, 20]  # the catapult's second crossing; the rise; never; the first
    np.testing.assert_array_equal(t.reached_at.values, want_at)
    np.testing.assert_array_equal(t.hover_steps.values, [200 - 50, 200 - 120, 0, 200 - 20])
    for r, at in enumerate(want_at):
        if at < 0:
            assert np.isnan(t["mean"].values[r]) and np.isnan(t.ggn_over_h.values[r])
            continue
        x = ratio[r][hs >= at]
        x = x[np.isfinite(x)]
        assert t["mean"].values[r] == pytest.approx(x.mean(), rel=1e-12)
        assert (t["min"].values[r], t["max"].values[r]) == (pytest.approx(x.min()), pytest.approx(x.max()))
        assert t.ggn_over_h.values[r] == pytest.approx(0.9, rel=1e-12)
    assert t.lambda0.values[0] == pytest.approx(1.4 * 4)


def test_sharpening_command_and_figure(planted, tmp_path):
    from click.testing import CliRunner

    from landscape.app.cli import main

    p, _ = planted
    res = CliRunner().invoke(main, ["analyze", "sharpening", str(p), "--fig", str(tmp_path / "s.png")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "never" in lines[3] and lines[1].split()[4] == "50" and (tmp_path / "s.png").stat().st_size > 1000
    res = CliRunner().invoke(main, ["analyze", "sharpening", str(p), "--reach", "3"])
    assert res.exit_code == 2 and "--reach must be in (0, 2]" in res.output
