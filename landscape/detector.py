"""Instability and period-doubling onsets of any 1-D series, from its dynamics alone.

The recorder uses it online (`--until first-instability`), `analysis.bifurcations` on
stores and `landscape analyze bifurcations --series FILE` on any .npy/.csv series. It
never looks at λ_max, so comparing λ1 at the onset with 2/η is a test, not a tautology.

Criterion (docs/analysis.md gives the measured accuracy). With D_t = x_{t+q} − x_t the
q-step differences (q = 1 for period 2, q = p/2 for period p):

- An **oscillation event at stride q** is a run of at least `min_run` consecutive sign
  alternations of D along one phase (t, t + q, t + 2q, …). A drift, even an accelerating
  one, never alternates; a single spike alternates once or twice; the differences of
  white noise alternate with probability 2/3 per step, so long runs do occur by chance.
- The run must also **grow**: its amplitude |D_{t+q} − D_t| (a running median of 4, so
  one spike cannot do it), held for `min_run` steps (the smallest value over them), must
  reach `snr` × the *floor*, the median amplitude over the `floor_window`·q steps before
  the run, and `growth` × its value at the start of the run (it must not be dying out,
  as the ring-down after a kick does). A chance run of noise, even of strongly
  correlated noise near a bifurcation, never holds `snr` times the noise it came from; a
  real instability grows exponentially out of it. (The alternation may become visible
  only once it exceeds the drift, when most of the growth is already done: hence the
  floor from before the run, not the run's own start, measures the growth.) A run that
  starts within the first `min_run`·q steps has no floor: it is reported as **unstable
  from the start** if its amplitude does not decay.
- The **onset** is the first step t of the run: the first step from which the
  differences alternate, not the start of a window.
- **Period 2^j** (p4, p8, p16): the first event at stride 2^(j−1) at or after the period-2
  onset (the orbit x_t, x_{t+q}, … splits into two alternating branches).
- **Chaos**: the first step, after the period-2 onset, from which for `min_run` windows
  of `window` steps no period p ≤ max_period repeats the one-step differences:
  RMS(d_{s+p} − d_s) > repeat_tol · RMS(d_s) for every p.
- Per oscillation period of Γ (steps kT … (k+1)T − 1), the onsets of the first event that
  *starts* in it; events closer than `min_run` steps to each other are one episode, so an
  oscillation carried over from the previous period does not count again.

Everything is computed from direct differences and medians (no running sums), so the
result does not depend on where the series starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import LandscapeError

LEVELS = ("instability", "p2", "p4", "p8", "p16", "chaos")


@dataclass(frozen=True)
class Detector:
    min_run: int = 16  # consecutive sign alternations that make an oscillation
    growth: float = 1.0  # … whose amplitude, held over min_run steps, reaches this × its start
    snr: float = 30.0  # … and reaches this multiple of the amplitude floor before it
    floor_window: int = 64  # steps (× stride) before the run that set the floor
    max_period: int = 16
    window: int = 64  # chaos: steps per repeat test
    repeat_tol: float = 0.05  # chaos: relative repeat error above which no period fits

    def validate(self) -> Detector:
        if self.min_run < 4 or self.floor_window < 4 or self.window < 8:
            raise LandscapeError("detector: min-run >= 4, floor-window >= 4 and window >= 8 required")
        if self.max_period < 2 or self.max_period & (self.max_period - 1):
            raise LandscapeError("detector: max-period must be a power of two >= 2")
        if self.growth < 1 or self.snr < 1 or not 0 < self.repeat_tol < 1:
            raise LandscapeError("detector: growth >= 1, snr >= 1 and 0 < repeat-tol < 1 required")
        return self


@dataclass(frozen=True)
class Event:
    """A growing oscillation at stride q: steps start … end (end exclusive)."""

    start: int
    end: int
    stride: int
    from_start: bool  # no stable stretch before it: the series starts unstable
    established: int = -1  # first step by which it has grown enough to count


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D bool array."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _median4(a: np.ndarray) -> np.ndarray:
    if a.size < 4:
        return np.array([np.median(a)]) if a.size else a
    return np.median(sliding_window_view(a, 4), axis=1)


def events(x, stride: int = 1, det: Detector = Detector()) -> list[Event]:
    """All growing oscillation events of x at the given stride, by start step."""
    x = np.asarray(x, dtype=np.float64)
    q = int(stride)
    if x.ndim != 1:
        raise LandscapeError("events: a 1-D series is needed")
    if x.size < 2 * q + det.min_run * q or not np.isfinite(x).any():
        return []
    D = x[q:] - x[:-q]
    alt = (D[:-q] * D[q:]) < 0  # alt[t]: D_t and D_{t+q} have opposite signs
    amp = np.abs(D[q:] - D[:-q])  # |x_{t+2q} − 2x_{t+q} + x_t|
    out = []
    for j in range(q):
        a, m = alt[j::q], amp[j::q]
        starts, ends = _runs(a)
        for s, e in zip(starts, ends):
            if e - s < det.min_run:
                continue
            t = j + s * q
            med = _median4(m[s:e])
            first = med[0]
            from_start = t < det.min_run * q
            w = min(det.min_run, med.size)
            held = sliding_window_view(med, w).min(axis=1)  # amplitude sustained over min_run steps
            if from_start:  # nothing before it to compare with: it must not be dying out
                need = det.growth * first
            else:
                floor = np.median(amp[max(0, t - det.floor_window * q) : t])
                need = max(det.growth * first, det.snr * floor)
            hit = np.flatnonzero(held >= need)
            if hit.size:
                out.append(Event(int(t), int(j + (e - 1) * q + 2 * q), q, bool(from_start), int(t + (hit[0] + w) * q)))
    return sorted(out, key=lambda ev: ev.start)


def _recorded(x) -> np.ndarray:
    """x as float64 without its unrecorded (non-finite) tail."""
    x = np.asarray(x, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(x))
    return x[: finite[-1] + 1] if finite.size else x[:0]


def _episodes(evs: list[Event], gap: int) -> list[Event]:
    """Merge events less than `gap` steps apart into episodes (start of the first)."""
    eps: list[Event] = []
    for ev in evs:
        if eps and ev.start - eps[-1].end < gap:
            last = eps[-1]
            eps[-1] = Event(last.start, max(last.end, ev.end), last.stride, last.from_start, last.established)
        else:
            eps.append(ev)
    return eps


def _chaos_onset(x: np.ndarray, start: int, stop: int, det: Detector) -> int | None:
    """First step ≥ start whose next `min_run` windows all repeat with no period ≤ max_period."""
    d = np.diff(x)
    W, pm = det.window, det.max_period
    hi = min(stop, d.size - W - pm)
    if hi - start < det.min_run:
        return None
    seg = d[start : hi + W + pm]
    L = hi - start
    win = sliding_window_view(seg, W)[: L + pm]  # (L + pm, W)
    base = win[:L]
    scale = np.sqrt(((base - base.mean(axis=1, keepdims=True)) ** 2).mean(axis=1))
    scale = np.maximum(scale, 1e-300)
    irregular = np.ones(L, dtype=bool)
    p = 1
    while p <= pm:
        err = np.sqrt(((win[p : p + L] - base) ** 2).mean(axis=1))
        irregular &= err > det.repeat_tol * scale
        p *= 2
    starts, ends = _runs(irregular)
    ok = np.flatnonzero(ends - starts >= det.min_run)
    return None if ok.size == 0 else start + int(starts[ok[0]])


@dataclass(frozen=True)
class SeriesOnsets:
    """Onsets of one series: per oscillation period of Γ (cycle) and overall."""

    onsets: np.ndarray  # (cycles, len(LEVELS)) absolute steps, NaN where none
    first_instability: float  # earliest onset over all cycles, NaN if none
    unstable_from_start: bool  # the series oscillates from its first steps
    events: tuple  # the period-2 episodes found


def analyse(x, period: int | None = None, det: Detector = Detector()) -> SeriesOnsets:
    """Onsets of every level of LEVELS in each cycle of `period` steps (one cycle if None)."""
    det.validate()
    x = _recorded(x)
    N = x.size
    T = int(period) if period else max(N, 1)
    ncyc = max(1, -(-N // T))
    out = np.full((ncyc, len(LEVELS)), np.nan)
    eps = _episodes(events(x, 1, det), det.min_run)
    strides = {}
    for c in range(ncyc):
        lo, hi = c * T, min((c + 1) * T, N)
        ep = next((e for e in eps if lo <= e.start < hi), None)
        if ep is None:
            continue
        out[c, 0] = out[c, 1] = ep.start
        for li, q in ((2, 2), (3, 4), (4, 8)):
            if 2 * q > det.max_period:
                continue
            if q not in strides:
                strides[q] = events(x, q, det)
            k = next((e.start for e in strides[q] if ep.start <= e.start < hi), None)
            out[c, li] = np.nan if k is None else k
        ch = _chaos_onset(x, max(ep.established, ep.start + det.window), hi, det)
        out[c, 5] = np.nan if ch is None else ch
    first = next((e for e in eps), None)
    return SeriesOnsets(
        out, np.nan if first is None else float(first.start), bool(first is not None and first.from_start), tuple(eps)
    )


def first_instability(x: np.ndarray, det: Detector = Detector()) -> tuple[np.ndarray, np.ndarray]:
    """Earliest instability step per row of x (R, N), NaN where none, and whether each row
    was unstable from its first steps (the first episode, whichever cycle of Γ it is in)."""
    det.validate()
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    first, from_start = np.full(x.shape[0], np.nan), np.zeros(x.shape[0], dtype=bool)
    for r, row in enumerate(x):
        evs = events(_recorded(row), 1, det)
        if evs:
            first[r], from_start[r] = evs[0].start, evs[0].from_start
    return first, from_start
