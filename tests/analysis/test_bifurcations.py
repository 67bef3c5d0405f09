"""The detector against known dynamical systems and the shipped DCE recording."""

from pathlib import Path

import numpy as np
import pytest

from analysis.bifurcations import LEVELS, Detector, detect, onsets, states

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"

# logistic map x ← r x (1 − x): period doublings at r = 3, 1 + √6, 3.5441, 3.5644
KNOWN = {"p2": 3.0, "p4": 1 + 6 ** 0.5, "p8": 3.544090, "p16": 3.564407}
TOLERANCE = 0.01  # in r: the detector's lag on a ramp of 1.7e-6 per step


@pytest.fixture(scope="module")
def logistic():
    N = 400_000
    r = np.linspace(2.9, 3.58, N)
    noise = 1e-7 * np.random.default_rng(0).standard_normal(N)  # keeps slow-passage delay small
    x = np.empty(N)
    v = 0.5
    for i in range(N):
        v = r[i] * v * (1 - v) + noise[i]
        x[i] = v
    return r, x


def test_logistic_map_period_doublings(logistic):
    r, x = logistic
    det = Detector()
    o = onsets(states(x, det), 0, len(x), det)
    for level, r_true in KNOWN.items():
        assert o[level] is not None, level
        assert abs(r[o[level]] - r_true) < TOLERANCE, (level, r[o[level]], r_true)
        assert r[o[level]] >= r_true - 1e-3  # never before the bifurcation
    assert abs(r[o["instability"]] - 3.0) < TOLERANCE
    assert r[o["chaos"]] > 3.5644 and r[o["chaos"]] < 3.58  # accumulation point 3.5699


def test_states_of_simple_signals():
    t = np.arange(2000, dtype=float)
    drift = 1.0 + 1e-4 * t + 1e-8 * t**2
    assert (states(drift)[:1900] == 1).all()
    p2 = drift + 0.05 * (-1) ** t
    assert (states(p2)[:1900] == 2).all()
    p4 = drift + 0.05 * np.array([1, 0.5, -1, -0.4])[t.astype(int) % 4]
    assert (states(p4)[:1900] == 4).all()
    growing = drift + 1e-6 * 1.02**t * (-1) ** t  # a period-2 oscillation still building up
    st = states(growing)
    assert (st[st != 1][:-1] != 0).all() and (st == 2).any()
    noisy = drift + 0.05 * np.random.default_rng(1).standard_normal(t.size)
    assert (states(noisy)[:1900] == 0).mean() > 0.95
    assert (states(drift)[-80:] == -1).all()  # the end is unknown, not stable
    # a drift that accelerates (as F does where Γ changes fastest) is not an instability;
    # (the plain spread of the one-step differences calls windows from t = 2774 on unstable)
    t3 = np.arange(3000, dtype=float)
    assert (states(1 / (3001 - t3))[:2860] == 1).all()


def test_carried_over_oscillation_is_not_a_new_onset():
    t = np.arange(3000, dtype=float)
    x = 1 + 1e-4 * t
    x[:300] += 0.05 * (-1) ** t[:300]  # unstable at the start of the period, then stable
    x[2000:] += 0.05 * (-1) ** t[2000:]
    o = onsets(states(x), 0, 3000)
    assert 1900 <= o["instability"] <= 2000 and o["p2"] is not None


def test_shipped_dce_run_first_instability_near_end_of_period_at_two_over_eta():
    res = detect(SHIPPED)
    assert list(res.level.values) == list(LEVELS)
    first = res.onset.sel(level="instability")
    T = res.period.values[:, None]
    k = res.cycle.values[None, :]
    assert np.isfinite(first.values).all()
    frac = (first.values - k * T) / T
    assert (frac > 0.7).all() and (frac < 1).all()  # late in each period, where Γ is narrowing
    ratio = res.lambda1.sel(level="instability") / res.two_over_eta
    assert (abs(ratio - 1) < 0.2).all(), ratio.values
    assert res.attrs["detector_threshold"] == 1e-3
