"""What sets the first instability: measurements at each replica's onset that separate the
linear criterion (λ1 = 2/η, where the one-step tangent map's multiplier 1 − ηλ1 reaches −1)
from what a finite bounce feels.

At the detector's first instability t0 of each replica (`analysis.bifurcations`), by exact
replay of gradient descent:

- `ratio`: λ1(θ_t0)/(2/η), the branch mean the detector reports (< 1: before the edge);
- `growth`: the bounce's measured growth per step, ln(‖p_{t0+w}‖/‖p_t0‖)/w, with p the iterates'
  second difference (`landscape.dynamics.iterates`);
- `exponent`: the top Lyapunov exponent of the tangent map over the same w steps (the linear
  growth an infinitesimal perturbation would have): ln|1 − ηλ1| ≈ 0 at the edge;
- `secant`: the curvature the bounce feels along v1, (F(θ + a v1) + F(θ − a v1) − 2F(θ))/a²,
  at the bounce's own amplitude a = ‖θ_{t0+1} − θ_t0‖/2, over 2/η (the kink of a ReLU unit
  switching inside the bounce raises it above λ1; a smooth network's equals λ1 to O(a²));
- `frozen_ratio`: λ1/(2/η) at the first instability of the same run replayed from t0 − `lead`
  with Γ frozen at Γ(t0 − lead) (NaN where the frozen run shows no instability within
  `horizon` steps: then the moving Γ made it).
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.curvature.spectrum import top_k
from landscape.dynamics.detector import analyse_iterates
from landscape.dynamics.iterates import from_trajectory
from landscape.runs.opened import Run

from .bifurcations import detect
from .lyapunov import lyapunov


def _secant(eng, theta: torch.Tensor, t: int, v: torch.Tensor, a: float) -> float:
    """(F(θ + a v) + F(θ − a v) − 2F(θ))/a² at step t."""
    pts = torch.stack([theta + a * v, theta - a * v, theta])
    F = eng.loss_at(pts, t).double()
    return float((F[0] + F[1] - 2 * F[2]) / (a * a))


def _frozen_onset(eng, theta: torch.Tensor, t: int, horizon: int) -> tuple[float, float]:
    """Replay `horizon` steps from θ at step t with Γ held at Γ(t): the first instability's
    offset from t (NaN if none) and λ1 there."""
    G = eng.gamma(t)
    th, traj = theta, [theta[0].double().numpy()]
    for _ in range(horizon):
        th, _ = eng.step(th, t, G, evaluate=False)
        traj.append(th[0].double().numpy())
    sc, pj = from_trajectory(np.stack(traj))
    first = analyse_iterates(sc, pj).first_instability
    if not np.isfinite(first):
        return float("nan"), float("nan")
    s = int(first)
    th_s = torch.as_tensor(traj[s], dtype=eng.dtype)[None]
    lam = float(top_k(eng, th_s, t, 2, G=G, tol=1e-8, max_iter=200).eigvals[0, 0])
    return float(s), lam


def onset_physics(source, window: int = 50, lead: int = 50, horizon: int = 1000, replicas=None) -> xr.Dataset:
    """The measurements above at each replica's first instability (NaN where it has none or
    the window runs past its recording)."""
    run = Run.open(source)
    if run.config.optimizer != "gd" or run.ds.sizes.get("pstep", 0) == 0:
        raise LandscapeError(f"{run.path}: the onset measurements replay gradient descent from saved parameters")
    det = detect(run, lambda_source="replay", confirm_chaos=False)
    idx = run.check_replicas(replicas)
    stops = det.steps_run.values
    names = ("ratio", "growth", "exponent", "secant", "frozen_ratio", "frozen_delay")
    out = {k: np.full(len(idx), np.nan) for k in names}
    onset = np.full(len(idx), np.nan)
    for i, r in enumerate(idx):
        t0 = det.first_instability.values[r]
        if not np.isfinite(t0) or t0 + window + 1 >= stops[r]:
            continue
        t0 = int(t0)
        onset[i] = t0
        eng = run.engine([r])
        eta = float(eng.eta[0])
        out["ratio"][i] = float(det.lambda1_first.values[r]) * eta / 2
        th = run.params_at(list(range(t0 - 1, t0 + window + 2)), [r])[0]
        p = np.linalg.norm(th[2:] - 2 * th[1:-1] + th[:-2], axis=1)  # ‖p_t‖, t = t0 … t0 + window
        out["growth"][i] = float(np.log(p[window] / p[0]) / window)
        out["exponent"][i] = float(lyapunov(run, k=1, start=t0, steps=window, replicas=[r]).exponent.values[0, 0])
        theta = torch.as_tensor(th[1], dtype=eng.dtype)[None]
        spec = top_k(eng, theta, t0, 2, tol=1e-8, max_iter=200)
        v1 = spec.eigvecs[0, 0]
        a = float(np.linalg.norm(th[2] - th[1])) / 2
        out["secant"][i] = _secant(eng, theta[0], t0, v1.to(eng.dtype), a) * eta / 2
        start = max(0, t0 - lead)
        theta_s = torch.as_tensor(run.params_at([start], [r])[:, 0], dtype=eng.dtype)
        delay, lam = _frozen_onset(eng, theta_s, start, horizon)
        out["frozen_delay"][i], out["frozen_ratio"][i] = delay, lam * eta / 2
    ds = run.ds.isel(replica=idx)
    coords = {k: ("replica", ds[k].values) for k in ("seed", "eta", "amplitude", "period") if k in ds}
    return xr.Dataset(
        {"onset": ("replica", onset), **{k: ("replica", v) for k, v in out.items()}},
        coords={"replica": np.asarray(idx), **coords},
        attrs={
            "source": str(run.path),
            "window": window,
            "lead": lead,
            "horizon": horizon,
            "activation": run.config.activation,
            "softplus_beta": run.config.softplus_beta,
            "loss_name": run.config.loss,
        },  # fmt: skip
    )
