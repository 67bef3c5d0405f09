"""Series with known answers for the instability detector (used by the tests and by
bench/detector_accuracy.py, which prints the accuracy table of docs/analysis.md)."""

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
