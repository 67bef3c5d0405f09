"""Instability and period-doubling detection from the dynamics alone.

Criterion (read from a recorded scalar series, by default the dynamical loss F_t;
λ_max is never used, so comparing λ1 at the onset with 2/η is a real test):

- In a sliding window of W steps (default 64) starting at t, take the one-step
  differences x_{s+1} − x_s and remove their best linear trend; let A be the standard
  deviation of what remains. A drift of x, even an accelerating one (Γ changes fastest
  at the ends of its period), gives nearly linear differences and a tiny A; an
  oscillation makes them alternate. The window is *unstable* when A > threshold · mean|x|
  (default threshold 1e-3).
- An unstable window has period p (p = 2, 4, …, max_period) for the smallest p at
  which the one-step differences correlate with themselves p steps later with
  coefficient ≥ 1 − repeat_tol (default 1e-3): the orbit repeats every p steps up to
  the slow drift. A correlation coefficient ignores a growing or shrinking amplitude,
  so an oscillation that is still building up is recognised too. An unstable window
  with no such p is *irregular* (chaotic, or a spike).
- States: 1 stable, p periodic, 0 irregular, −1 unknown (the last W + max_period steps).
- In every oscillation period of Γ (steps kT … (k+1)T − 1) the *first instability* is
  the first unstable window after at least `min_run` stable windows (oscillations
  carried over from the previous period do not count), and it must stay unstable for
  `min_run` windows. The onset of period p ≥ 2 is the first window from there whose
  period is ≥ p (held for `min_run` windows); `chaos` the first irregular one held
  for `min_run` windows after the period-2 onset (and at least one window length after
  the instability: the windows straddling the onset mix drift and a growing
  oscillation and read as irregular).

One criterion, one place: the recorder uses it online (`--until first-instability`),
analysis.bifurcations offline; the logistic-map test in tests/analysis/test_bifurcations.py
checks it against known bifurcations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import LandscapeError

LEVELS = ("instability", "p2", "p4", "p8", "p16", "chaos")


@dataclass(frozen=True)
class Detector:
    window: int = 64
    max_period: int = 16
    threshold: float = 1e-3
    repeat_tol: float = 1e-3
    min_run: int = 16

    def validate(self) -> "Detector":
        if self.window < 8 or self.max_period < 2 or self.max_period & (self.max_period - 1):
            raise LandscapeError("detector: window must be >= 8 and max-period a power of two >= 2")
        if self.threshold <= 0 or not 0 < self.repeat_tol < 1 or self.min_run < 1:
            raise LandscapeError("detector: threshold > 0, 0 < repeat-tol < 1 and min-run >= 1 required")
        return self


def _rolling_std(x: np.ndarray, W: int) -> np.ndarray:
    """Standard deviation of every length-W window along the last axis."""
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    c1 = np.cumsum(np.pad(x, pad), axis=-1)
    c2 = np.cumsum(np.pad(x * x, pad), axis=-1)
    s1, s2 = c1[..., W:] - c1[..., :-W], c2[..., W:] - c2[..., :-W]
    return np.sqrt(np.maximum(s2 / W - (s1 / W) ** 2, 0.0))


def states(x: np.ndarray, det: Detector = Detector()) -> np.ndarray:
    """State of the window starting at each step: 1 stable, p periodic, 0 irregular, −1 unknown."""
    x = np.asarray(x, dtype=np.float64)
    N, W, pm = x.shape[-1], det.window, det.max_period
    L = N - W - pm
    out = np.full(x.shape, -1, dtype=np.int64)
    if L <= 0:
        return out
    d1 = np.diff(x, axis=-1)
    a = d1[..., : L + W - 1]
    A1 = _rolling_std(a, W)[..., :L]
    # the part of the differences a linear trend does not explain: a drift of x that
    # accelerates (Γ changes fastest at the ends of its period) is not an oscillation
    idx = np.arange(a.shape[-1], dtype=np.float64)
    cov_t = _rolling_mean(a * idx, W)[..., :L] - _rolling_mean(a, W)[..., :L] * _rolling_mean(idx, W)[:L]
    resid = np.sqrt(np.maximum(A1**2 - cov_t**2 / ((W * W - 1) / 12.0), 0.0))
    scale = np.abs(_rolling_mean(x, W)[..., :L])
    unstable = resid > det.threshold * np.maximum(scale, 1e-300)
    st = np.where(unstable, 0, 1)
    found = ~unstable
    ma = _rolling_mean(a, W)[..., :L]
    p = 2
    while p <= pm:
        b = d1[..., p : p + L + W - 1]
        mb = _rolling_mean(b, W)[..., :L]
        cov = _rolling_mean(a * b, W)[..., :L] - ma * mb
        sb = _rolling_std(b, W)[..., :L]
        with np.errstate(invalid="ignore", divide="ignore"):
            rho = cov / (A1 * sb)
        hit = ~found & (rho >= 1 - det.repeat_tol)
        st = np.where(hit, p, st)
        found |= hit
        p *= 2
    out[..., :L] = st
    return out


def _rolling_mean(x, W):
    pad = [(0, 0)] * (x.ndim - 1) + [(1, 0)]
    c = np.cumsum(np.pad(x, pad), axis=-1)
    return (c[..., W:] - c[..., :-W]) / W


def _first_held(mask: np.ndarray, start: int, run: int) -> int | None:
    """First index ≥ start where mask holds for `run` consecutive entries."""
    m = mask[start:].astype(np.int64)
    if m.size < run:
        return None
    c = np.convolve(m, np.ones(run, dtype=np.int64), mode="valid")
    idx = np.flatnonzero(c == run)
    return None if idx.size == 0 else start + int(idx[0])


def onsets(st: np.ndarray, start: int, stop: int, det: Detector = Detector()) -> dict:
    """Onsets (absolute steps, or None) of each level in LEVELS within [start, stop)."""
    seg = st[start:stop]
    res = dict.fromkeys(LEVELS)
    stable = _first_held(seg == 1, 0, det.min_run)
    if stable is None:
        return res
    first = _first_held((seg != 1) & (seg != -1), stable, det.min_run)
    if first is None:
        return res
    res["instability"] = start + first
    for name, p in (("p2", 2), ("p4", 4), ("p8", 8), ("p16", 16)):
        if p > det.max_period:
            continue
        k = _first_held(seg >= p, first, det.min_run)
        res[name] = None if k is None else start + k
    # chaos: irregular after the cascade has begun (windows straddling the onset mix
    # drift and a growing oscillation and read as irregular, so they do not count)
    p2 = res["p2"] - start if res["p2"] is not None else first + det.window
    k = _first_held(seg == 0, max(p2, first + det.window), det.min_run)
    res["chaos"] = None if k is None else start + k
    return res


def first_instability(x: np.ndarray, periods, det: "Detector" = None) -> np.ndarray:
    """Earliest first-instability step per row of x (R, N), NaN where none: the onsets of
    every oscillation period (periods (R,)) of Γ, minimum over periods."""
    det = det or Detector()
    st = states(x, det)
    N = x.shape[-1]
    out = np.full(x.shape[0], np.nan)
    for r, T in enumerate(np.asarray(periods, dtype=int)):
        for k in range(-(-N // T)):
            o = onsets(st[r], k * T, min((k + 1) * T, N), det)["instability"]
            if o is not None:
                out[r] = o
                break
    return out
