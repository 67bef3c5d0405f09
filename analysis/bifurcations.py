"""Instability and period-doubling onsets of saved runs (or of any 1-D series), with λ there.

The criterion lives in `landscape.dynamics.detector` (shared with the recorder's online early
stop); this module applies it to a store, per replica and per oscillation period of Γ,
and reads λ1, λ2 at every instability onset on both branches of the bounce
(`analysis.branches`): the values at the onset step t and at t + 1, and their mean.

By default it reads the iterates (`landscape.dynamics.iterates`: recorded, or replayed exactly for
a store from before they were recorded), because a bounce across a symmetric valley
changes θ with period 2 and the loss with period 1; `variable='loss'` (or loss_static,
train_acc) reads that 1-D series instead.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.dynamics.detector import LEVELS, Detector, analyse, analyse_iterates
from landscape.problem.optimizers import label
from landscape.runs.opened import Run

from .branches import branches_recorded, branches_replay
from .io import edge_of, replica_coords, sharpness_var

LAMBDA_SOURCES = ("auto", "replay", "recorded")
FLOQUET_WINDOW = 400  # steps either side of a detected onset searched for the multipliers' crossing
CHAOS_EXPONENT = 1e-3  # per step: e-fold separation within the 1,024 steps of the chaos test's span
VARIABLES = ("iterates", "loss", "loss_static", "train_acc")


def detect_series(x, period: int | None = None, det: Detector = Detector()) -> xr.Dataset:
    """Onsets of a bare 1-D series (e.g. a loss curve from elsewhere), per cycle of `period`."""
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise LandscapeError("a series must hold numbers") from None
    if x.ndim != 1 or x.size < 4:
        raise LandscapeError("a series must be 1-D with at least 4 values")
    if period is not None and not (isinstance(period, int | np.integer) and period >= 2):
        raise LandscapeError(f"the period must be an integer >= 2 steps, not {period}")
    res = analyse(x, period, det)
    return xr.Dataset(
        {
            "onset": (("cycle", "level"), res.onsets),
            "first_instability": ((), res.first_instability),
            "unstable_from_start": ((), res.unstable_from_start),
        },
        coords={"cycle": np.arange(res.onsets.shape[0]), "level": np.array(LEVELS, dtype=object)},
        attrs={f"detector_{k}": v for k, v in asdict(det).items()},
    )


def detect(path, det: Detector = Detector(), variable: str = "iterates", lambda_source: str = "auto",
           confirm_chaos: bool = True, floquet: bool = False) -> xr.Dataset:  # fmt: skip
    """Onset steps per replica, cycle and level, and λ1, λ2 on both branches at every
    instability onset (level 'instability'; λ at the other levels from the recorded spectra).

    With `confirm_chaos` (and a gradient-descent store whose parameters replay), each chaos
    onset stands only where the top finite-time Lyapunov exponent over the chaos test's span
    (`chaos_window` × `min_run` steps from the onset, by exact replay) is positive beyond
    CHAOS_EXPONENT: nearby trajectories separate there. The flat directions of a network
    (λ ≈ 0, multiplier ≈ 1) alone give exponents of ±10⁻⁴ over such a span, so a smaller
    positive value is no separation. The exponent is kept (`chaos_exponent`), the onset set to
    NaN where it is not above that.

    With `floquet`, each period-2^j onset (p2, p4, p8, p16) is set beside the step where the
    smallest real multiplier of the 2^(j−1)-step tangent map crosses −1 within ±FLOQUET_WINDOW
    steps of it (`analysis.floquet.flip_step`; NaN where no crossing is bracketed there):
    `onset_floquet`, and `floquet_lag` = detector − multipliers (negative: the detector first)."""
    det.validate()
    if lambda_source not in LAMBDA_SOURCES:
        raise LandscapeError(f"lambda source must be one of {', '.join(LAMBDA_SOURCES)}")
    if variable not in VARIABLES:
        raise LandscapeError(f"cannot detect on '{variable}'; use {', '.join(VARIABLES)}")
    run = Run.open(path)  # opened and checked once: the signals and the replay take it
    ds = run.ds
    steps = ds.sizes["step"]
    replayed = False
    if variable == "iterates":
        sc, pj, replayed = run.iterate_signals()
        series = lambda r, p: analyse_iterates(sc[r], pj[r], p, det)  # noqa: E731
    else:
        x = ds[variable].values
        series = lambda r, p: analyse(x[r], p, det)  # noqa: E731
    periods = ds.period.values.astype(int)
    ncyc = int(np.ceil(steps / periods.min()))
    R = ds.sizes["replica"]
    onset = np.full((R, ncyc, len(LEVELS)), np.nan)
    first = np.full(R, np.nan)
    from_start = np.zeros(R, dtype=bool)
    for r in range(R):
        res = series(r, int(periods[r]))
        onset[r, : res.onsets.shape[0]] = res.onsets
        first[r], from_start[r] = res.first_instability, res.unstable_from_start

    chaos_exp = np.full((R, ncyc), np.nan)
    if confirm_chaos and run.config.optimizer == "gd" and ds.sizes.get("pstep", 0) > 0:
        _confirm_chaos(run, onset, chaos_exp, det)

    flo = np.full((R, ncyc, len(LEVELS)), np.nan)
    if floquet:
        if run.config.optimizer != "gd" or ds.sizes.get("pstep", 0) == 0:
            raise LandscapeError(f"{path}: --floquet replays gradient descent from saved parameters")
        _floquet_onsets(run, onset, flo)

    hs = ds.hstep.values
    # the sharpness the optimizer's threshold applies to: λ(P⁻¹H) for rmsprop and adam, recorded
    # with --precond-k (else replayed), λ(H) for the others
    name = sharpness_var(run.config.optimizer)
    adaptive = name != "eigval"
    ev = ds[name].values if ds.sizes["hstep"] and name in ds else np.full((R, 0, 2), np.nan)
    k = min(2, ev.shape[2])
    source = lambda_source
    if source == "auto":
        source = "replay" if ds.sizes.get("pstep", 0) > 0 else "recorded"
    if source == "recorded" and adaptive and name not in ds:
        raise LandscapeError(
            f"{path}: a {run.config.optimizer} run's threshold applies to λ(P⁻¹H), not recorded here "
            "(--precond-k) and not replayable without saved parameters"
        )
    # λ at every onset of every level (recorded branches), then exact replay at instabilities
    lam = np.full((R, ncyc, len(LEVELS), 2, 2), np.nan)  # (…, branch t / t+1, eig)
    for r in range(R):
        for c in range(ncyc):
            for li in range(len(LEVELS)):
                o = onset[r, c, li]
                if np.isfinite(o) and hs.size:
                    lam[r, c, li, :, :k] = branches_recorded(hs, ev[r], o)
    if source == "replay":
        q = [(r, int(onset[r, c, 0])) for r in range(R) for c in range(ncyc) if np.isfinite(onset[r, c, 0])]
        vals = branches_replay(run, q, k=k)
        for (r, t), v in zip(q, vals):
            for cyc in np.flatnonzero(onset[r, :, 0] == t):
                for lvl in np.flatnonzero(onset[r, cyc] == t):  # p2 shares the instability's step
                    lam[r, cyc, lvl, :, :k] = v
    first_lam = np.full((R, 2), np.nan)
    for r in range(R):
        if np.isfinite(first[r]):  # the first instability after a stable stretch
            hit = np.flatnonzero(onset[r, :, 0] == first[r])
            if hit.size:
                first_lam[r] = lam[r, hit[0], 0, :, 0]
    dims = ("replica", "cycle", "level")
    out = xr.Dataset(
        {
            "onset": (dims, onset),
            "lambda1": (dims, lam[..., 0].mean(axis=-1)),
            "lambda1_t": (dims, lam[..., 0, 0]),
            "lambda1_t1": (dims, lam[..., 1, 0]),
            "lambda2": (dims, lam[..., 1].mean(axis=-1)),
            "first_instability": (("replica",), first),
            # where the multipliers of the 2^(j−1)-step map cross −1 near each period-2^j onset (--floquet)
            "onset_floquet": (dims, flo),
            "floquet_lag": (dims, onset - flo),
            # the top Lyapunov exponent over each chaos onset's span (NaN: no chaos found, or not confirmed)
            "chaos_exponent": (("replica", "cycle"), chaos_exp),
            "unstable_from_start": (("replica",), from_start),
            "lambda1_first": (("replica",), first_lam.mean(axis=1)),
            "lambda1_first_spread": (("replica",), np.abs(first_lam[:, 1] - first_lam[:, 0])),
            "two_over_eta": (("replica",), 2.0 / ds.eta.values),
            # the optimizer's threshold on that sharpness (2/η for gd and every store before optimizers)
            "threshold": (("replica",), edge_of(ds)),
            # the optimizer and the β its threshold depends on, per replica (gd: "gd")
            "optimizer_label": (
                ("replica",),
                np.array([label(run.config.optimizer, r.beta, r.beta1) for r in run.config.replicas()], dtype=object),
            ),
            # the step a replica diverged at (its values NaN from there), −1 if it did not
            "diverged_at": (("replica",), np.asarray(ds.attrs.get("diverged_at") or [-1] * R, dtype=np.int64)),
            # the steps recorded of each replica: its stop after its first instability (--until), else all
            "steps_run": (("replica",), _steps_run(ds.attrs.get("stopped_at"), int(run.steps_done), R)),
        },
        coords={
            "replica": ds.replica.values,
            "cycle": np.arange(ncyc),
            "level": np.array(LEVELS, dtype=object),
            **replica_coords(ds),
        },
        attrs={
            "variable": variable,
            "iterate_signals": "replayed" if replayed else ("recorded" if variable == "iterates" else "not used"),
            "source": str(run.path),
            "steps_recorded": int(run.steps_done),
            "lambda_source": source,
            "optimizer": run.config.optimizer,
            "sharpness": "λ(P⁻¹H)" if adaptive else "λ(H)",
            "criterion": "landscape.dynamics.detector: the trailing multiplier of the second differences beyond −1, "
            "with the alternating amplitude grown snr× its floor (docs/reference/analysis.md)",
            "lambda": "branch mean of λ(θ_t) and λ(θ_{t+1}) at the onset t (analysis/branches.py)",
        },
    )
    out.attrs.update({f"detector_{k}": v for k, v in asdict(det).items()})
    return out


def _confirm_chaos(run, onset: np.ndarray, exponent: np.ndarray, det: Detector) -> None:
    """The top exponent over each chaos onset's span into `exponent` (replica, cycle); a chaos
    onset whose exponent is not above CHAOS_EXPONENT is removed from `onset` (in place)."""
    from .lyapunov import lyapunov

    ci = LEVELS.index("chaos")
    span = det.chaos_window * det.min_run
    done = int(run.steps_done)
    for r, c in zip(*np.nonzero(np.isfinite(onset[:, :, ci]))):
        t = int(onset[r, c, ci])
        steps = min(span, done - t)
        if steps < 1:
            continue
        lam = float(lyapunov(run, k=1, start=t, steps=steps, replicas=[int(r)]).exponent.values[0, 0])
        exponent[r, c] = lam
        if not lam > CHAOS_EXPONENT:
            onset[r, c, ci] = np.nan


def _floquet_onsets(run, onset: np.ndarray, out: np.ndarray) -> None:
    """The multipliers' crossing near every detected period-2^j onset, into `out` (in place)."""
    from .floquet import PERIOD_OF_LEVEL, flip_step

    stops = _steps_run(run.ds.attrs.get("stopped_at"), int(run.steps_done), onset.shape[0])
    for level, p in PERIOD_OF_LEVEL.items():
        li = LEVELS.index(level)
        for r, c in zip(*np.nonzero(np.isfinite(onset[:, :, li]))):
            t = int(onset[r, c, li])
            hi = min(t + FLOQUET_WINDOW, int(stops[r]) - p)
            out[r, c, li] = flip_step(run, int(r), t - FLOQUET_WINDOW, hi, p)


def _steps_run(stopped_at, done: int, R: int) -> np.ndarray:
    stops = np.asarray(stopped_at or [-1] * R, dtype=np.int64)
    return np.where(stops >= 0, stops, done)
