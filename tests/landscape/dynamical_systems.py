"""Series with known answers for the instability detector (used by the tests and by
bench/detector_accuracy.py, which prints the accuracy table of docs/reference/analysis.md)."""

from __future__ import annotations

import numpy as np

# logistic map x ← r x (1 − x): period 2 at r = 3, 4 at 1 + √6, 8 at 3.544090, 16 at 3.564407,
# accumulation (chaos) at 3.569946
LOGISTIC = {"p2": 3.0, "p4": 1 + 6**0.5, "p8": 3.544090, "p16": 3.564407, "chaos": 3.569946}
# gradient descent on f(x) = (x² − 1)²/4: x ← x − η x (x² − 1); the minimum x = 1 has f'' = 2, so
# period 2 at η = 1, 4 at √5 − 1, 8 at 1.28803 (reference values of the issue)
DOUBLE_WELL = {"p2": 1.0, "p4": 5**0.5 - 1, "p8": 1.28803}


def logistic(N=400_000, r0=2.9, r1=3.58, noise=1e-7, seed=0):
    """(r per step, x per step) with r ramped linearly and a small additive noise."""
    r = np.linspace(r0, r1, N)
    xi = noise * np.random.default_rng(seed).standard_normal(N)
    x = np.empty(N)
    v = 0.5
    for i in range(N):
        x[i] = v
        v = r[i] * v * (1 - v) + xi[i]
    return r, x


def double_well(N=400_000, eta0=0.9, eta1=1.3, noise=1e-10, seed=0, x0=1.2):
    """(η per step, loss f(x_t) per step) of gradient descent with η ramped linearly."""
    eta = np.linspace(eta0, eta1, N)
    xi = noise * np.random.default_rng(seed).standard_normal(N)
    F = np.empty(N)
    v = x0
    for i in range(N):
        F[i] = (v * v - 1) ** 2 / 4
        v = v - eta[i] * v * (v * v - 1) + xi[i]
    return eta, F


def growing_oscillation(N=3000, t0=1200, rate=0.02, a0=1e-6, cap=0.05, noise=0.0, seed=0):
    """A drifting series plus a period-2 oscillation that starts at t0 and grows exponentially,
    and the independent truth: the first step from which the one-step differences alternate
    in sign for 16 steps running."""
    t = np.arange(N, dtype=float)
    x = 1 + 0.3 * np.sin(t / 400) + 1e-4 * t
    x = x + np.where(t >= t0, (-1) ** t * np.minimum(a0 * np.exp(rate * (t - t0)), cap), 0.0)
    if noise:
        x = x * (1 + noise * np.random.default_rng(seed).standard_normal(N))
    d = np.diff(x)
    alt = d[:-1] * d[1:] < 0
    truth = next((i for i in range(len(alt) - 16) if alt[i : i + 16].all() and i >= t0 - 2), None)
    return x, truth


def smooth_drifts(N=3000):
    """Series that never oscillate: name → series."""
    t = np.arange(N, dtype=float)
    return {
        "exponential 1 + 1e-9·exp(t/10)": 1 + 1e-9 * np.exp(t[:400] / 10),
        "linear": 1 + 1e-3 * t,
        "accelerating 1/(N + 1 − t)": 1 / (N + 1 - t),
        "polynomial (t/N)^6": 1 + (t / N) ** 6,
        "slow sine": np.sin(t / 300),
        "triangle-wave drift (Γ-like)": 1 + np.abs(((t / 500) % 2) - 1),
    }


def noise_suite(rel, kind="gaussian", N=3000, seed=0):
    """A smooth drift times (1 + rel·noise): gaussian, or heavy-tailed (Student t, 1.5 dof)."""
    rng = np.random.default_rng(seed)
    t = np.arange(N, dtype=float)
    base = 1 + 0.3 * np.sin(t / 400)
    e = rng.standard_normal(N) if kind == "gaussian" else rng.standard_t(1.5, N)
    return base * (1 + rel * e)


# --- maps the detector was not tuned on: their flip points computed here, not looked up -------
def cycle_flip(f, jac, n: int, guess: np.ndarray, p0: float) -> float:
    """The parameter at which an n-cycle of the map x ← f(x, p) (x a vector) has a multiplier −1:
    the root of f^n(x) = x and det(J_n + I) = 0 (J_n the product of the Jacobians along the
    cycle), by scipy's fsolve from a point of the cycle and a parameter near the flip."""
    from scipy.optimize import fsolve

    d = guess.size

    def eqs(z):
        x, p = z[:d], z[d]
        y, J = x.copy(), np.eye(d)
        for _ in range(n):
            J = jac(y, p) @ J
            y = f(y, p)
        return np.concatenate([y - x, [np.linalg.det(J + np.eye(d))]])

    z, _, ok, msg = fsolve(eqs, np.concatenate([guess, [p0]]), full_output=True, xtol=1e-13)
    if ok != 1:
        raise RuntimeError(msg)
    return float(z[d])


def _orbit(f, x0, p_end, n, burn=20000):
    """A point of the attracting n-cycle at parameter p_end (after a burn-in)."""
    x = np.array(x0, dtype=float)
    for _ in range(burn):
        x = f(x, p_end)
    return x


def sine_f(x, r):
    return r * np.sin(np.pi * x)


def sine_j(x, r):
    return np.array([[r * np.pi * np.cos(np.pi * x[0])]])


def ricker_f(x, r):
    return x * np.exp(r * (1 - x))


def ricker_j(x, r):
    return np.array([[np.exp(r * (1 - x[0])) * (1 - r * x[0])]])


HENON_B = 0.3


def henon_f(z, a):
    return np.array([1 - a * z[0] ** 2 + z[1], HENON_B * z[0]])


def henon_j(z, a):
    return np.array([[-2 * a * z[0], 1.0], [HENON_B, 0.0]])


def flips(f, jac, x0, approx: dict) -> dict:
    """{'p2': …, 'p4': …, …}: the flip of the fixed point (the 1-cycle) and of the 2-, 4-cycles,
    each solved from the attracting cycle just past the previous flip."""
    out = {}
    for n, (level, p_guess) in enumerate(approx.items()):
        period = 2**n
        start = _orbit(f, x0, p_guess - 1e-3, period)  # still the stable `period`-cycle
        out[level] = cycle_flip(f, jac, period, start, p_guess)
    return out


def ramp_map(f, x0, p0, p1, N, noise, seed):
    """(parameter per step, x per step (N, d)) of the map with its parameter ramped linearly
    and additive noise; x_t is recorded before the step with parameter p_t."""
    p = np.linspace(p0, p1, N)
    x = np.array(x0, dtype=float)
    xi = noise * np.random.default_rng(seed).standard_normal((N, x.size))
    out = np.empty((N, x.size))
    for i in range(N):
        out[i] = x
        x = f(x, p[i]) + xi[i]
    return p, out


def symmetric_gd(N=6000, t_cross=3000, lam0=1.6, lam1=2.3, eta=1.0, drift=0.0, noise=0.0, seed=0, x0=0.3):
    """Gradient descent on F_t(x) = ½λ(t)(x − m_t)² − ¼(x − m_t)⁴ with λ(t)η ramped linearly
    through 2 at step t_cross (the flip of its minimum: multiplier 1 − ηλ = −1) and the valley
    floor m_t = drift·t moving. F is even in x − m, so a bounce x − m = ±a leaves F unchanged:
    the loss cannot show the instability, the iterates can. Returns (x, F, λη per step)."""
    t = np.arange(N, dtype=float)
    # the crossing exactly at t_cross: λ(t)η = 2 + s (t − t_cross), s = (lam1 − lam0) / N
    lam = (2 + (lam1 - lam0) / N * (t - t_cross)) / eta
    xi = noise * np.random.default_rng(seed).standard_normal(N)
    x, F = np.empty(N), np.empty(N)
    v = x0
    for i in range(N):
        m = 0.5 + drift * i
        u = v - m
        x[i], F[i] = v, 0.5 * lam[i] * u * u - 0.25 * u**4
        v = v - eta * (lam[i] * u - u**3) + xi[i]
    return x, F, lam * eta


def softening_gd(valley="cosine", tilt=1e-4, lam0=1.9, lam1=2.2, N=4000, noise=1e-12, seed=0, x0=1e-3):
    """Gradient descent on a valley that softens away from its floor, λη ramped linearly from
    lam0 to lam1 through 2, observed through its loss, which is even in the bounce but for a
    small tilt: cosine, F = λ(1 − cos x) + tilt·x; quartic, F = ½λx² − ¼x⁴ + tilt·x³. The floor
    flips at λη = 2 into a stable period-2 cycle ±a (the sine map's 2-cycle stays stable up to
    λη ≈ 2.7, the cubic's up to 3): the loss shows the period 2 only through the tilt, and
    the envelope's rise and saturation as a smooth transient. Returns (F, λη per step)."""
    rng = np.random.default_rng(seed)
    lam = lam0 + (lam1 - lam0) * np.arange(N) / N
    F, v = np.empty(N), x0
    for i in range(N):
        if valley == "cosine":
            F[i] = lam[i] * (1 - np.cos(v)) + tilt * v
            v = v - (lam[i] * np.sin(v) + tilt)
        else:
            F[i] = 0.5 * lam[i] * v * v - 0.25 * v**4 + tilt * v**3
            v = v - (lam[i] * v - v**3 + 3 * tilt * v * v)
        v += noise * rng.standard_normal()
    return F, lam


def ring_down(N=3000, k=1500, rho=-0.95, amp=0.1, noise=1e-6, seed=0):
    """x_t = 1 + noise + amp·ρ^(t−k) after a kick at step k: stable, however long it alternates."""
    t = np.arange(N, dtype=float)
    x = 1 + noise * np.random.default_rng(seed).standard_normal(N)
    x[k:] += amp * rho ** (t[k:] - k)
    return x


def ar1(N=5000, rho=-0.99, seed=0):
    """Stationary AR(1) noise, x_{t+1} = ρ x_t + ξ, started from its stationary law: alternating
    for long stretches when ρ → −1, never growing."""
    rng = np.random.default_rng(seed)
    xi = rng.standard_normal(N)
    x = np.empty(N)
    x[0] = xi[0] / np.sqrt(1 - rho * rho)
    for i in range(1, N):
        x[i] = rho * x[i - 1] + xi[i]
    return 1 + 1e-3 * x


def held_bounce(N=4000, lam_eta=2.05, eta=1.0, drift=1e-4, amp=None):
    """GD on ½λ(x − m)² − ¼(x − m)⁴ with λη = 2.05 fixed (past the flip from the first step),
    started on its period-2 orbit x − m = ±√((λη − 2)/η) (multiplier 1 − λη + 3ηa² = −0.9:
    a stable orbit) and the floor m moving: the run bounces at the edge from its first step,
    neither growing nor decaying, as a network does whose initial sharpness exceeds 2/η.
    `amp` starts it elsewhere (a small amplitude grows onto the orbit)."""
    a = np.sqrt((lam_eta - 2) / eta) if amp is None else amp
    lam = lam_eta / eta
    x = np.empty(N)
    v = 0.5 + a
    for i in range(N):
        m = 0.5 + drift * i
        u = v - m
        x[i] = v
        v = v - eta * (lam * u - u**3)
    return x


def two_modes(
    N=4000, lam_eta_u=2.05, lam_eta_w=1.9, u0=1e-4, w0=0.5, eta=1.0, drift=1e-4, ramp=None, noise=0.0, seed=0
):
    """GD on ½λ_u u² − ¼u⁴ + ½λ_w w² (two directions of one valley whose floor moves along a
    third), started with a small u and a large w: the catapult of a network whose initial
    sharpness is past 2/η. The stable w (multiplier 1 − λ_w η = −0.9) rings down while u, past
    the flip from the first step (λ_u η = 2.05), grows beneath it onto its period-2 orbit and
    stays there: ‖p‖ first falls, then rises again, the alternation never broken.
    `ramp` = (t0, t1, start): λ_u η rises linearly from `start` to `lam_eta_u` over steps
    t0 … t1 instead (a flip crossed late, after a stable stretch); `noise` is added to u at each
    step (what the late growth starts from). Returns θ_t (N, 3)."""
    lam_w = lam_eta_w / eta
    xi = noise * np.random.default_rng(seed).standard_normal(N)
    u, w = u0, w0
    th = np.empty((N, 3))
    for i in range(N):
        if ramp is None:
            le = lam_eta_u
        else:
            t0, t1, start = ramp
            le = start + (lam_eta_u - start) * min(max((i - t0) / (t1 - t0), 0.0), 1.0)
        th[i] = (u, w, 0.5 + drift * i)
        u = u - eta * (le / eta * u - u**3) + xi[i]
        w = w - eta * lam_w * w
    return th
