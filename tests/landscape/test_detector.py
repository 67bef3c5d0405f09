"""The instability detector against systems with known answers, and on series where the
right answer is "nothing" (drifts, spikes, noise)."""

import numpy as np
import pytest

from landscape import LandscapeError
from landscape.detector import LEVELS, Detector, analyse, events, first_instability
from tests.landscape import dynamical_systems


@pytest.fixture(scope="module")
def logistic():
    return dynamical_systems.logistic()


@pytest.fixture(scope="module")
def double_well():
    return dynamical_systems.double_well()


def _levels(res, axis):
    return {lvl: (None if np.isnan(o) else axis[int(o)]) for lvl, o in zip(LEVELS, res.onsets[0])}


def test_logistic_map_cascade(logistic):
    r, x = logistic
    got = _levels(analyse(x), r)
    for level in ("p2", "p4", "p8", "p16"):
        truth = dynamical_systems.LOGISTIC[level]
        assert got[level] is not None, level
        assert truth - 1e-4 <= got[level] < truth + 0.005, (level, got[level], truth)  # never early
    assert got["instability"] == got["p2"]
    assert dynamical_systems.LOGISTIC["chaos"] <= got["chaos"] < 3.58


def test_double_well_gradient_descent(double_well):
    """GD on (x² − 1)²/4 with η ramped 0.9 → 1.3: period 2 at η = 1, 4 at √5 − 1, 8 at 1.28803."""
    eta, F = double_well
    got = _levels(analyse(F), eta)
    for level in ("p2", "p4", "p8"):
        truth = dynamical_systems.DOUBLE_WELL[level]
        assert got[level] is not None, level
        assert truth - 1e-4 <= got[level] < truth + 0.006, (level, got[level], truth)
    assert got["chaos"] is None  # the ramp ends before the accumulation point (≈ 1.30)


def test_double_well_below_the_bifurcation_is_stable():
    eta, F = dynamical_systems.double_well(N=100_000, eta0=0.5, eta1=0.99)
    assert np.isnan(analyse(F).first_instability)


@pytest.mark.parametrize("t0,rate,a0", [(1200, 0.02, 1e-6), (1500, 0.01, 1e-8), (700, 0.1, 1e-10), (300, 0.05, 1e-3)])
def test_onset_is_the_first_step_of_the_alternation(t0, rate, a0):
    x, truth = dynamical_systems.growing_oscillation(t0=t0, rate=rate, a0=a0)
    assert truth is not None
    assert analyse(x).first_instability == truth


@pytest.mark.parametrize("noise", [1e-7, 1e-6, 1e-5])
def test_onset_under_noise_within_a_few_steps(noise):
    x, _ = dynamical_systems.growing_oscillation(t0=1200, rate=0.02, a0=1e-6, noise=noise)
    clean, truth = dynamical_systems.growing_oscillation(t0=1200, rate=0.02, a0=1e-6)
    got = analyse(x).first_instability
    assert np.isfinite(got) and abs(got - truth) <= 5 + 60 * (noise >= 1e-5), (got, truth)


@pytest.mark.parametrize("name", list(dynamical_systems.smooth_drifts()))
def test_smooth_trends_are_not_instabilities(name):
    assert np.isnan(analyse(dynamical_systems.smooth_drifts()[name]).first_instability)


@pytest.mark.parametrize("size", [0.01, 0.1, 0.5])
def test_isolated_spikes_are_not_instabilities(size):
    t = np.arange(3000, dtype=float)
    x = 1 + 1e-4 * t
    x[1500] *= 1 + size
    x[2200:2203] *= 1 - size  # a three-step dip too
    assert np.isnan(analyse(x).first_instability)


@pytest.mark.parametrize("kind", ["gaussian", "heavy"])
def test_noise_suite_no_false_positives(kind):
    hits = sum(
        np.isfinite(analyse(dynamical_systems.noise_suite(rel, kind, seed=s)).first_instability)
        for rel in (1e-8, 1e-6, 1e-4, 1e-2, 1e-1)
        for s in range(8)
    )
    assert hits == 0


def test_stable_noise_driven_alternation_is_not_an_instability():
    """Logistic map at fixed r = 2.95 (multiplier −0.95): noise makes x alternate for long
    stretches with a fluctuating amplitude, but nothing grows."""
    _, x = dynamical_systems.logistic(N=100_000, r0=2.95, r1=2.95)
    assert np.isnan(analyse(x).first_instability)


def test_unstable_from_the_first_steps():
    t = np.arange(2000, dtype=float)
    x = 1 + 1e-4 * t + 0.05 * (-1) ** t  # oscillating from step 0
    fi, start = first_instability(x[None])
    assert fi[0] == 0 and start[0]
    res = analyse(x, 500)
    assert res.unstable_from_start and res.onsets[0, 0] == 0
    assert np.isnan(res.onsets[1:, 0]).all()  # carried over, not new in later cycles
    dying = 1 + 1e-4 * t + 0.05 * 0.9**t * (-1) ** t  # an overshoot that decays is not
    assert np.isnan(analyse(dying).first_instability)


def test_carried_over_oscillation_is_not_a_new_onset():
    t = np.arange(3000, dtype=float)
    x = 1 + 1e-4 * t
    x[:300] += 0.05 * (-1) ** t[:300]  # unstable at the start of the first cycle, then stable
    grow = np.minimum(1e-7 * np.exp(0.05 * (t - 1900)), 0.05)
    x[1900:] += grow[1900:] * (-1) ** t[1900:]
    res = analyse(x, 1000)
    assert res.onsets[0, 0] == 0 and np.isnan(res.onsets[1, 0])
    d = np.diff(x)
    alt = d[:-1] * d[1:] < 0
    truth = next(i for i in range(1000, 2900) if alt[i : i + 16].all())  # where ΔF starts alternating
    assert res.onsets[2, 0] == truth and 1900 < truth < 2100
    assert len(res.events) == 2


def test_onsets_do_not_depend_on_where_the_series_starts():
    x, _ = dynamical_systems.growing_oscillation(t0=1500, rate=0.01, a0=1e-8)
    x = x + 1e6  # a large offset: direct differences keep full precision
    base = analyse(x).first_instability
    for s in (0, 1, 7, 100, 333):
        assert analyse(x[s:]).first_instability == base - s


def test_period_four_in_a_constructed_series():
    t = np.arange(4000, dtype=float)
    x = 1 + 1e-5 * t + 0.05 * (-1) ** t
    split = np.where(t >= 2000, np.minimum(1e-8 * np.exp(0.02 * (t - 2000)), 0.01), 0)
    x = x + split * np.array([1, 0, -1, 0])[t.astype(int) % 4] * 1.0
    ev = events(x, 2)
    D = x[2:] - x[:-2]
    alt = D[:-2] * D[2:] < 0  # stride-2 differences alternating along one phase
    truth = next(i for i in range(len(alt) - 40) if alt[i : i + 32 : 2].all())
    assert ev and ev[0].start == truth and 2000 < truth < 2500
    assert not events(x[:2000], 2)  # before the split: period 2 only


def test_bad_settings_are_refused():
    with pytest.raises(LandscapeError):
        Detector(max_period=12).validate()
    with pytest.raises(LandscapeError):
        Detector(min_run=2).validate()


def test_ring_down_after_a_kick_is_not_an_instability():
    """A stable system kicked once rings down with alternating sign (multiplier −0.95):
    the alternation is long and far above the floor, but it decays from its first step."""
    t = np.arange(3000, dtype=float)
    x = 1 + 1e-5 * t
    x[1500:] += 0.01 * (-0.95) ** (t[1500:] - 1500)
    assert np.isnan(analyse(x).first_instability)
