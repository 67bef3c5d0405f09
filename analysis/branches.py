"""λ1, λ2 at a given step without the parity trap: both branches, read at that step.

Once the iterate bounces across a valley (period 2), λ1(θ_t) alternates between a low
and a high branch from one step to the next (e.g. 1.66, 2.23, 1.65, 2.24 on the
reference DCE run). A spectrum sampled every 25 steps alternates parity and so picks a
branch by chance; interpolating between samples mixes branches. Here λ at step t is
always the pair (λ(θ_t), λ(θ_{t+1})), one value per branch, and their mean:

- `replay` (default when the store has saved parameters): θ_t and θ_{t+1} are rebuilt
  by deterministic replay from the last saved parameter vector and their spectra are
  computed there (tolerance 1e-8): exact at the step, no interpolation at all.
- `recorded`: from the recorded spectra, each branch (step parity) interpolated only
  among samples of its own parity; with `hessian_pairs` (the default) both parities are
  sampled at every Hessian site. NaN where a parity has no samples around t.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from landscape.curvature.spectrum import top_k
from landscape.runs.opened import Run
from landscape.runs.replay import walk


def branches_replay(run, queries, k: int = 2, tol: float = 1e-8) -> np.ndarray:
    """(len(queries), 2, k) eigenvalues at steps t and t + 1 for queries [(replica, t), …] of
    `run` (a Run or a path): of H, or of P⁻¹H for an adaptive optimizer (its threshold's sharpness)."""
    run = Run.open(run, checked=False)
    done, pe = run.steps_done, run.config.save_params_every
    seeds = [r.seed for r in run.config.replicas()]
    out = np.full((len(queries), 2, k), np.nan)
    groups = defaultdict(list)  # replay each save interval once, all its replicas in one batch
    for i, (r, t) in enumerate(queries):
        t = int(t)
        if 0 <= t and t + 1 < done:
            groups[(t // pe) * pe].append((i, int(r), t))
    for items in groups.values():
        rows = sorted({r for _, r, _ in items})
        eng = run.engine(rows)
        where = {r: j for j, r in enumerate(rows)}
        wanted = defaultdict(list)
        for i, r, t in items:
            wanted[t].append((i, where[r], 0))
            wanted[t + 1].append((i, where[r], 1))
        warm = None
        for s, theta in walk(run, eng, rows, list(wanted)):
            # an adaptive optimizer's sharpness is λ(P⁻¹H), P from its state at s (walk put it there)
            P = eng.preconditioner()
            if P is not None and s == 0:
                continue  # no preconditioner before the first update: NaN
            res = top_k(eng, theta, s, k, v0=warm, tol=tol, max_iter=400, salt=s, seeds=[seeds[r] for r in rows],
                        precondition=P)  # fmt: skip
            warm = res.block
            ev = res.eigvals.detach().cpu().double().numpy()
            for i, j, b in wanted[s]:
                out[i, b] = ev[j]
    return out


def branches_recorded(hstep: np.ndarray, eigval: np.ndarray, t: float) -> np.ndarray:
    """(2, k) eigenvalues at t (even-parity branch first… as (θ_t, θ_{t+1})) from one replica's
    recorded spectra eigval (H, k), each branch interpolated only among its own parity."""
    k = eigval.shape[1]
    out = np.full((2, k), np.nan)
    for b, step in enumerate((t, t + 1)):
        par = int(step) % 2
        m = (hstep % 2) == par
        hs = hstep[m]
        if hs.size == 0 or step < hs[0] or step > hs[-1]:
            continue
        for e in range(k):
            out[b, e] = np.interp(step, hs, eigval[m, e])
    return out
