"""Instability and period-doubling onsets from the dynamics alone: of the iterates of a run,
or of any 1-D series.

The recorder uses it online (`--until first-instability`), `analysis.bifurcations` on
stores and `landscape analyze bifurcations --series FILE` on any .npy/.csv series. It
never looks at λ_max, so comparing λ1 at the onset with 2/η is a test, not a tautology.

The physics. Near a fixed point (or a slowly moving valley floor) the deviation along the
direction that loses stability evolves as e_{t+1} = μ e_t + forcing. A period-doubling
(flip) instability is μ crossing −1; for gradient descent μ = 1 − ηλ, so μ = −1 is λ = 2/η.
The period-2 part of the orbit is read from its second differences p_t = x_{t+q} − 2x_t +
x_{t−q} (q = 1 for period 2, q = p/2 for period p), which a drift (even an accelerating one)
barely has and a bounce has in full. Their **multiplier** over a short trailing window,

    μ̂_t = Σ_j ⟨p_{j+q}, p_j⟩ / Σ_j ‖p_j‖²,   j = t − window … t − 1,

is the regression of each p on the one before: μ for a decaying or growing bounce, and
μ in expectation for a bounce driven by noise (an AR(1) process's lag-one regression).
A drift, other (stable) modes and white noise all pull μ̂ towards −1 < μ̂, never below, so
μ̂ < −1 means the alternating part really grows.

Criterion (docs/reference/analysis.md gives the measured accuracy):

- An **event at stride q** is a run of at least `min_run` steps with μ̂ < −1 in which the
  alternating amplitude (the third difference ‖p_{t+q} − p_t‖, a running median of 4 so one
  spike cannot do it), held for `min_run` steps (the smallest value over them), reaches
  `snr` × the *floor* (`snr_doubling` × at the strides of the period doublings, whose floor is
  the residue of the orbit before them): the median amplitude over the `floor_window`·q steps
  before the run; and `growth` × the amplitude where its chain (below) started.
  A run that starts within the first `min_run`·q steps compares with the amplitude at its
  own start instead (there is no floor yet): the series is **unstable from the start** (a
  catapult out of the initialisation). It is flagged, and the *first instability* is the
  first event after a stable stretch, as the paper's Fig. 4 means it.
  Stationary noise, even strongly anti-correlated (AR(1) with ρ → −1), never holds snr times
  its own median; a ring-down after a kick has μ̂ > −1 from its first step. Runs less than
  `max_gap` steps apart are one chain, whose floor is read before its first run (near
  saturation μ̂ flickers about −1, and a floor read inside the growth would hide it).
- A run of the iterates that starts *already bouncing* (its initial sharpness beyond 2/η) at an
  amplitude that neither grows nor decays shows no growth; `held_from_start` finds it from the
  first `hold` steps (alternating, not decaying), and everything until that bounce has decayed
  `snr`-fold counts as unstable from the start. So does a bounce that first falls (a stable
  direction ringing down above the unstable one) and turns within those steps to grow
  `snr`-fold, the alternation never broken: the growth had no stable stretch before it.
- The **onset** is the first step of that run: the first step from which the trailing
  multiplier says "growing". Near the crossing μ̂ fluctuates around −1, and each excursion
  back above −1 starts a new run, so the run that counts starts at the last crossing before
  the growth took hold: never before μ crossed −1 in a deterministic system; with noise, by
  at most the measured tolerance of docs/reference/analysis.md.
- **Period 2^j** (p4, p8, p16): the first event at stride 2^(j−1) at or after the period-2
  onset (the orbit x_t, x_{t+q}, … splits into two alternating branches).
- **Chaos**: the first step, after the period-2 onset, from which for `min_run` windows of
  `chaos_window` steps no period p ≤ max_period repeats the one-step differences, even up to
  a factor that may change linearly across the window (a growing or decaying periodic orbit
  repeats up to one): min_c RMS(d̃_{s+p} − c(τ)·d̃_s) > repeat_tol · RMS(d̃_s) for every p, with
  c(τ) = c0 + c1·τ and d̃ the second differences less their window's mean (a curved drift is
  no new period); and the window is rough: its period-2 parts (pair means and alternating
  envelope of d) are not both smooth (a sharp but smooth rise, as an orbit saturating on a
  stable cycle through an observable nearly even in the bounce, fits no repeat and is no chaos).
- Per oscillation period of Γ (steps kT … (k+1)T − 1), the onsets of the first event that
  *starts* in it; events closer than `min_run` steps to each other are one episode, so an
  oscillation carried over from the previous period does not count again.

Non-finite values (NaN, ±inf: an unrecorded tail, a diverged replica) end every window
that contains them and never enter a floor. Everything is computed from direct sums over
windows (no running sums), so the result does not depend on where the series starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from landscape import LandscapeError

LEVELS = ("instability", "p2", "p4", "p8", "p16", "chaos")


def _setting(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Detector:
    """The criterion's settings; each field's help is what `landscape analyze bifurcations`
    shows for its option (the defaults and their meaning are declared here only)."""

    min_run: int = _setting(16, "steps in a row with the multiplier beyond −1 that make an event")
    max_gap: int = _setting(4, "runs this close share the floor from before the first of them")
    snr: float = _setting(10.0, "… whose held amplitude reaches this multiple of the floor before it")
    snr_doubling: float = _setting(30.0, "the same for the period doublings after it (strides 2, 4, 8)")
    growth: float = _setting(2.0, "… and this multiple of its own start (a kick's ring-down starts at its top)")
    floor_window: int = _setting(1024, "steps (× stride) before the run that set the floor")
    window: int = _setting(8, "steps (× stride) of the trailing multiplier estimate")
    hold: int = _setting(128, "steps at the start over which a bounce that neither decays nor grows is held")
    max_period: int = _setting(16, "the longest period of the doubling cascade looked for (a power of two)")
    chaos_window: int = _setting(64, "chaos: steps per repeat test")
    repeat_tol: float = _setting(0.05, "chaos: relative repeat error above which no period fits")

    def validate(self) -> Detector:
        if self.max_gap < 0 or self.min_run < 4 or self.floor_window < 4 or self.window < 2 or self.chaos_window < 8:
            raise LandscapeError(
                "detector: max-gap >= 0, min-run >= 4, floor-window >= 4, window >= 2, chaos-window >= 8 required"
            )
        if self.hold < 32:
            raise LandscapeError("detector: hold >= 32 required")
        if self.max_period < 2 or self.max_period & (self.max_period - 1):
            raise LandscapeError("detector: max-period must be a power of two >= 2")
        if not self.snr >= 1 or not self.snr_doubling >= 1 or not self.growth >= 1 or not 0 < self.repeat_tol < 1:
            raise LandscapeError("detector: snr >= 1, snr-doubling >= 1, growth >= 1 and 0 < repeat-tol < 1 required")
        return self


@dataclass(frozen=True)
class Event:
    """A growing alternation at stride q: steps start … end (end exclusive)."""

    start: int
    end: int
    stride: int
    from_start: bool  # no stable stretch before it: the series starts unstable
    established: int = -1  # first step by which it has grown enough to count


@dataclass(frozen=True)
class Signal:
    """What the criterion reads at one stride, per step t (NaN where undefined):
    lag = ⟨p_{t+q}, p_t⟩, norm2 = ‖p_t‖², amp = ‖p_{t+q} − p_t‖ (the alternating amplitude)."""

    lag: np.ndarray
    norm2: np.ndarray
    amp: np.ndarray
    stride: int


def _clean(x) -> np.ndarray:
    x = np.array(x, dtype=np.float64)
    x[~np.isfinite(x)] = np.nan
    return x


def series_signal(x, stride: int = 1) -> Signal:
    """The signal of a series x (N,) or of a multivariate one (N, K) (the iterates' projections),
    read one difference higher than the vector's: from the third differences
    r_t = p_t − p_{t−q}, which a smooth drift (a loss curve under a moving Γ) has far less of
    than p, while a bounce has the same multiplier in both."""
    x = _clean(x)
    if x.ndim == 1:
        x = x[:, None]
    q, N = int(stride), x.shape[0]
    nan = np.full(N, np.nan)
    lag, norm2, amp = nan.copy(), nan.copy(), nan.copy()
    if N > 4 * q:
        p = x[2 * q :] - 2 * x[q:-q] + x[: -2 * q]  # p at steps q … N−q−1
        r = p[q:] - p[:-q]  # r at steps 2q … N−q−1
        m = r.shape[0]
        norm2[2 * q : 2 * q + m] = (r * r).sum(1)
        amp[2 * q : 2 * q + m] = np.sqrt(norm2[2 * q : 2 * q + m])
        lag[2 * q : 2 * q + m - q] = (r[q:] * r[:-q]).sum(1)
    return Signal(lag, norm2, amp, q)


def iterate_signal(scalars) -> Signal:
    """The stride-1 signal of a run's iterates from its recorded (N, 3) ‖p_t‖, ‖p_t − p_{t−1}‖,
    cos(p_t, p_{t−1}) (`landscape.dynamics.iterates`): the whole parameter vector, not a projection."""
    sc = _clean(scalars)
    pn, qn, cos = sc[:, 0], sc[:, 1], sc[:, 2]
    lag = np.full(pn.shape, np.nan)
    lag[:-1] = cos[1:] * pn[1:] * pn[:-1]
    amp = np.full(pn.shape, np.nan)
    amp[:-1] = qn[1:]
    return Signal(lag, pn * pn, amp, 1)


def multiplier(sig: Signal, window: int) -> np.ndarray:
    """μ̂_t over the trailing `window`·q steps (NaN where a window holds a non-finite value)."""
    W = int(window) * sig.stride
    N = sig.lag.size
    mu = np.full(N, np.nan)
    if N <= W:
        return mu
    # lag_j reads p_{j+q}: the window of t ends at j = t − q so that μ̂_t uses p up to p_t
    a = sliding_window_view(sig.lag, W).sum(1)
    b = sliding_window_view(sig.norm2, W).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = a / b
    m[~(b > 0)] = np.nan
    lo = W + sig.stride - 1
    mu[lo:] = m[: N - lo]
    return mu


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (exclusive) of the runs of True in a 1-D bool array."""
    m = np.concatenate([[False], mask, [False]]).astype(np.int8)
    d = np.diff(m)
    return np.flatnonzero(d == 1), np.flatnonzero(d == -1)


def _median4(a: np.ndarray) -> np.ndarray:
    if a.size < 4:
        return np.array([np.nanmedian(a)]) if a.size and np.isfinite(a).any() else np.full(a.size, np.nan)
    return np.median(sliding_window_view(a, 4), axis=1)  # a NaN inside gives NaN: no hold across it


def signal_events(sig: Signal, det: Detector = Detector()) -> list[Event]:
    """All events of a signal, by start step."""
    q = sig.stride
    mu = multiplier(sig, det.window)
    with np.errstate(invalid="ignore"):
        unstable = mu < -1.0
    amp = sig.amp
    first_valid = np.flatnonzero(np.isfinite(mu))
    if first_valid.size == 0:
        return []
    t_min = int(first_valid[0])
    out: list[Event] = []
    starts, ends = _runs(unstable)
    if starts.size == 0:
        return out
    # runs less than max_gap apart are one chain: μ̂ flickering back above −1 for a step or two
    # (near saturation) does not move the floor into the growth; each run still counts alone
    chain = np.concatenate([[0], np.cumsum(starts[1:] - ends[:-1] > det.max_gap)]).astype(int)
    chain_start = {c: int(starts[np.flatnonzero(chain == c)[0]]) for c in set(chain.tolist())}
    for s, e, c in zip(starts, ends, chain):
        if e - s < det.min_run:
            continue
        s0 = chain_start[c]
        med = _median4(amp[s:e])
        w = min(det.min_run, med.size)
        held = sliding_window_view(med, w).min(axis=1)  # amplitude sustained over min_run steps
        from_start = bool(s0 - t_min < det.min_run * q)
        if from_start:  # nothing stable before it: it must grow from its own start
            base = med[:w][np.isfinite(med[:w])]
            floor = float(base.min()) if base.size else np.nan
        else:
            before = amp[max(0, s0 - det.floor_window * q) : s0]
            floor = float(np.nanmedian(before)) if np.isfinite(before).any() else np.nan
        if not np.isfinite(floor):
            continue
        snr = det.snr if q == 1 else det.snr_doubling
        # growth counted from the chain's start: a slow growth (μ̂ flickering about −1) doubles
        # over several runs of the chain, none of which need double alone
        base = float(np.median(amp[s0 : s0 + 4])) if s0 < s else float(med[0])
        base = base if np.isfinite(base) else float(med[0])
        need = max(snr * floor, det.growth * base) if np.isfinite(base) else snr * floor
        with np.errstate(invalid="ignore"):
            hit = np.flatnonzero(held >= need)
        if hit.size:
            est = int(s + hit[0] + w)
            # the instability (stride 1) is dated where its growth began; the doublings at their run
            earlier = starts[(starts < s) & (starts >= s - det.floor_window * q)]
            s_on = s if from_start or q > 1 else _grown_since(sig, earlier, s, est, det)
            # reported at the newest iterate the run's first multiplier rests on (μ̂_s reads x_{s+q})
            out.append(Event(int(s_on + q), int(e + q), q, from_start, est + q))
    return out


def _grown_since(sig: Signal, earlier: np.ndarray, s: int, est: int, det: Detector) -> int:
    """The start of the growth an event at run start s belongs to: the earliest of the run starts
    just before s (nearest first, stopping at the first that fails) from which the alternation
    has grown over every stretch a … b up to `est`, its multiplier over each (Σ lag / Σ ‖p‖²)
    below −1, from its first step on. A slow growth (μ̂ flickering about −1, its runs
    broken every few dozen steps) is then dated where it began, not where one run first held
    it; a stable stretch before it (a stretch whose multiplier is above −1) stops the search."""
    onset = s
    for a in earlier[::-1]:
        lag, n2 = sig.lag[a:est], sig.norm2[a:est]
        if lag.size < det.min_run or not (np.isfinite(lag).all() and np.isfinite(n2).all()):
            break
        if not (np.cumsum(lag) < -np.cumsum(n2)).all():
            break
        onset = int(a)
    return onset


def events(x, stride: int = 1, det: Detector = Detector()) -> list[Event]:
    """All growing alternations of the series x (N,) or (N, K) at the given stride, by start."""
    x = np.asarray(x)
    if x.ndim not in (1, 2):
        raise LandscapeError("events: a 1-D series (or (steps, k) projections) is needed")
    return signal_events(series_signal(x, stride), det)


def _recorded(x) -> np.ndarray:
    """x as float64 without its unrecorded (all non-finite) tail."""
    x = _clean(x)
    fin = np.isfinite(x) if x.ndim == 1 else np.isfinite(x).any(axis=tuple(range(1, x.ndim)))
    idx = np.flatnonzero(fin)
    return x[: idx[-1] + 1] if idx.size else x[:0]


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


ROUGH = 0.6  # chaos: the least roughness of a window's period-2 parts (a saturating rise: ≤ 0.35, chaos: ≈ 1.8)


def _rough(win: np.ndarray) -> np.ndarray:
    """(L,) how rough each window (L, K, W) of second differences is, split into its period-2
    parts: the pair means e_s = (d_s + d_{s+1})/2 and the alternating envelope o_s = (−1)^s
    (d_s − d_{s+1})/2; ‖Δ²e‖² + ‖Δ²o‖² over ‖e − ē‖² + ‖o − ō‖². A period-2 orbit growing to
    a stable cycle, seen through an observable nearly even in the bounce, has a smooth e carrying
    the power (the envelope's rise and saturation) and o at rounding level: no repeat fits a
    sharp rise, yet nothing is irregular, and this reads ≈ 0.01. A chaotic orbit's parts are
    rough (≈ 1–4, white noise √6)."""
    sign = np.where(np.arange(win.shape[-1] - 1) % 2, -1.0, 1.0)
    e = (win[..., :-1] + win[..., 1:]) / 2
    o = (win[..., :-1] - win[..., 1:]) / 2 * sign
    num = sum((np.diff(u, 2, axis=-1) ** 2).sum(axis=(1, 2)) for u in (e, o))
    den = sum(((u - u.mean(axis=-1, keepdims=True)) ** 2).sum(axis=(1, 2)) for u in (e, o))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(num / np.maximum(den, 1e-300))


def _chaos_onset(x: np.ndarray, start: int, stop: int, det: Detector) -> int | None:
    """First step ≥ start whose next `min_run` windows repeat with no period ≤ max_period, not
    even up to a factor. x: (N,) or (N, K)."""
    if x.ndim == 1:
        x = x[:, None]
    d = np.diff(x, n=2, axis=0)  # a curved drift (a loss growing with the bounce) is no new period
    W, pm = det.chaos_window, det.max_period
    hi = min(stop, d.shape[0] - W - pm)
    if hi - start < det.min_run:
        return None
    seg = d[start : hi + W + pm]  # (L + W + pm, K)
    L = hi - start
    win = sliding_window_view(seg, W, axis=0)[: L + pm]  # (L + pm, K, W)
    base = win[:L] - win[:L].mean(axis=2, keepdims=True)  # a drift is no new period: centred
    tau = (np.arange(W) - (W - 1) / 2) / W  # the factor may change linearly across the window
    b2 = base * base
    B00, B01, B11 = b2.sum(axis=(1, 2)), (b2 * tau).sum(axis=(1, 2)), (b2 * tau * tau).sum(axis=(1, 2))
    det2 = np.maximum(B00 * B11 - B01 * B01, 1e-300)
    bb = np.maximum(B00, 1e-300)
    irregular = np.ones(L, dtype=bool)
    p = 1
    while p <= pm:
        other = win[p : p + L] - win[p : p + L].mean(axis=2, keepdims=True)
        ob = other * base
        y0, y1 = ob.sum(axis=(1, 2)), (ob * tau).sum(axis=(1, 2))
        c0, c1 = (B11 * y0 - B01 * y1) / det2, (B00 * y1 - B01 * y0) / det2
        # the best factor c0 + c1·τ: a growing or decaying periodic orbit repeats up to it
        err2 = (other * other).sum(axis=(1, 2)) - c0 * y0 - c1 * y1
        irregular &= err2 > det.repeat_tol**2 * bb  # a non-finite window is not irregular
        p *= 2
    irregular &= _rough(win[:L]) > ROUGH
    starts, ends = _runs(irregular)
    ok = np.flatnonzero(ends - starts >= det.min_run)
    return None if ok.size == 0 else start + int(starts[ok[0]])


@dataclass(frozen=True)
class SeriesOnsets:
    """Onsets of one series: per oscillation period of Γ (cycle) and overall."""

    onsets: np.ndarray  # (cycles, len(LEVELS)) absolute steps, NaN where none
    first_instability: float  # the first onset after a stable stretch, NaN if none
    unstable_from_start: bool  # the series (also) grows an oscillation from its first steps
    events: tuple  # the period-2 episodes found


def _levels(p2: list[Event], series: np.ndarray, N: int, period: int | None, det: Detector) -> SeriesOnsets:
    """Per cycle: the period-2 episode starting in it, the longer periods (events of `series` at
    strides 2, 4, 8 after it) and chaos (repeat test on `series`)."""
    T = int(period) if period else max(N, 1)
    ncyc = max(1, -(-N // T))
    out = np.full((ncyc, len(LEVELS)), np.nan)
    eps = _episodes(p2, det.min_run)
    strides: dict[int, list[Event]] = {}
    for c in range(ncyc):
        lo, hi = c * T, min((c + 1) * T, N)
        ep = next((e for e in eps if lo <= e.start < hi and not e.from_start), None)
        if ep is None:
            continue
        out[c, 0] = out[c, 1] = ep.start
        for li, q in ((2, 2), (3, 4), (4, 8)):
            if 2 * q > det.max_period:
                continue
            if q not in strides:
                strides[q] = signal_events(series_signal(series, q), det)
            k = next((e.start for e in strides[q] if ep.start <= e.start < hi), None)
            out[c, li] = np.nan if k is None else k
        ch = _chaos_onset(series, max(ep.established, ep.start + det.chaos_window), hi, det)
        out[c, 5] = np.nan if ch is None else ch
    first = next((e for e in eps if not e.from_start), None)
    return SeriesOnsets(
        out, np.nan if first is None else float(first.start), any(e.from_start for e in eps), tuple(eps)
    )


def analyse(x, period: int | None = None, det: Detector = Detector()) -> SeriesOnsets:
    """Onsets of every level of LEVELS in each cycle of `period` steps (one cycle if None) of a
    series x (N,) (or (N, K): several series of the same dynamics, read as one vector)."""
    det.validate()
    x = _recorded(x)
    return _levels(signal_events(series_signal(x, 1), det), x, x.shape[0], period, det)


def held_from_start(scalars, det: Detector = Detector()) -> int:
    """Where a bounce the run starts with ends: 0 if it starts without one, N if it never ends.

    A run whose initial sharpness is already beyond 2/η bounces from its first steps and may
    stay at the edge with an amplitude that neither grows nor decays, so no growth marks it.
    Over the first `hold` steps with a signal, p_t alternates (cos(p_t, p_{t−1}) < −0.9 on
    90 % of them) and either does not decay (the median ‖p‖ of the last quarter is at least
    half that of the first: a stable mode with multiplier −0.99 falls to 0.38 of it), or it
    grows back out of its ring-down (`_regrowth`). It ends at the first step where ‖p‖
    (median of 4) falls below the bounce's level / `snr`."""
    sc = _clean(scalars)
    pn, cos = sc[:, 0], sc[:, 2]
    ok = np.flatnonzero(np.isfinite(cos) & np.isfinite(pn))
    if ok.size < det.hold:
        return 0
    t0, H = int(ok[0]), det.hold
    c, a = cos[t0 : t0 + H], pn[t0 : t0 + H]
    q = H // 4
    with np.errstate(invalid="ignore"):
        bouncing = np.mean(c < -0.9) >= 0.9
        head, tail = np.nanmedian(a[:q]), np.nanmedian(a[-q:])
        if not (bouncing and head > 0):
            return 0
        amp = _median4(pn[t0:])
        if tail >= 0.5 * head:
            level, since = head, 0
        else:
            regrown = _regrowth(amp, cos[t0:], det)
            if regrown is None:
                return 0
            since = regrown
            level = float(amp[regrown])
        low = np.flatnonzero(amp[since:] < level / det.snr)
    return t0 + since + int(low[0]) if low.size else pn.size


def _regrowth(amp: np.ndarray, cos: np.ndarray, det: Detector) -> int | None:
    """Where a bounce that decays over the first steps has grown back `snr`-fold from its
    trough, the alternation never broken (cos < −0.9 on all but fewer than `min_run` steps
    in a row); None if it does not.

    A direction past the flip from the first step, beneath a stable one that rings down
    (a catapult out of the initialisation), shows as ‖p‖ falling, turning within the first
    `hold` steps and rising again. The iterates cannot tell it from a flip crossed within
    those steps; both leave no stable stretch before the growth. A ring-down that is still
    falling at the end of the first `hold` steps is not one: a flip crossed later, while it
    alternates, is a first instability."""
    H = det.hold
    head = amp[:H]
    if not np.isfinite(head).any():
        return None
    k = int(np.nanargmin(head))
    with np.errstate(invalid="ignore"):
        if not (amp[k] > 0 and k < H - H // 4 and amp[H - 1] >= det.growth * amp[k]):
            return None  # still falling, or not yet turned by the end of the first steps
        broken = np.convolve(~(cos < -0.9), np.ones(det.min_run), "valid") >= det.min_run
        stop = int(np.flatnonzero(broken)[0]) if broken.any() else amp.size
        up = np.flatnonzero(amp[k:stop] >= det.snr * amp[k])
    return k + int(up[0]) if up.size else None


def _iterate_events(scalars: np.ndarray, det: Detector) -> tuple[list[Event], bool]:
    """The period-2 events of one replica's iterate scalars (N, 3), those that start inside a
    bounce the run starts with marked as its (unstable from the start); and whether it has one."""
    held = held_from_start(scalars, det)
    evs = signal_events(iterate_signal(scalars), det)
    return [Event(e.start, e.end, e.stride, True, e.established) if e.start < held else e for e in evs], held > 0


def analyse_iterates(scalars, projections, period: int | None = None, det: Detector = Detector()) -> SeriesOnsets:
    """Onsets of one replica from its iterate signals: the instability (period 2) from the whole
    vector's (N, 3) scalars, the longer periods and chaos from its (N, K) projections."""
    det.validate()
    sc, pj = _clean(scalars), _clean(projections)
    fin = np.flatnonzero(np.isfinite(pj).any(axis=1))
    N = int(fin[-1]) + 1 if fin.size else 0
    sc, pj = sc[:N], pj[:N]
    evs, held = _iterate_events(sc, det)
    res = _levels(evs, pj, N, period, det)
    if held and not res.unstable_from_start:  # held without an event: flagged all the same
        res = SeriesOnsets(res.onsets, res.first_instability, True, res.events)
    return res


def first_instability(scalars, det: Detector = Detector()) -> tuple[np.ndarray, np.ndarray]:
    """The first instability step per replica from the iterate scalars (R, N, 3) — the first
    growing bounce after a stable stretch, NaN where none — and whether each was (also)
    unstable from its first steps (a catapult out of the initialisation)."""
    det.validate()
    sc = np.asarray(scalars, dtype=np.float64)
    first, from_start = np.full(sc.shape[0], np.nan), np.zeros(sc.shape[0], dtype=bool)
    for r in range(sc.shape[0]):
        marked, held = _iterate_events(sc[r], det)
        evs = _episodes(marked, det.min_run)
        later = [e for e in evs if not e.from_start]
        if later:
            first[r] = later[0].start
        from_start[r] = held or any(e.from_start for e in evs)
    return first, from_start
