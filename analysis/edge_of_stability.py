"""λ_max against 2/η over time (the paper's Fig. 1): does a run ride the edge of stability,
or escape to a wider valley?

Replicas are grouped by (loss, width, η); each group gives the mean and standard error over
seeds of the loss F(t) and of the ratio λ_max·η/2 at every spectrum step. A run has
*escaped* when its ratio stays below `level` (0.9: 10 % under 2/η) over the last `tail`
fraction of its spectra after having reached the edge (ratio ≥ `reach`, 0.95) before.
The summary is small (one curve per group) and is what `reproduce fig1` keeps and redraws.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.runs.opened import Run

from .io import edge_of, sharpness_var

LEVEL, REACH, TAIL = 0.9, 0.95, 0.1


def _tail_len(n: int, tail: float) -> int:
    """How many of n spectra make the last `tail` of a run (at least one)."""
    return max(1, int(round(tail * n)))


def escaped(ratio: np.ndarray, level: float = LEVEL, reach: float = REACH, tail: float = TAIL) -> np.ndarray:
    """Per run (rows of `ratio`, λ_max·η/2 over spectrum steps): reached the edge, then stayed
    below `level` over the last `tail` of the run. NaN spectra count as missing."""
    ratio = np.atleast_2d(np.asarray(ratio, float))
    k = _tail_len(ratio.shape[1], tail)
    head, last = ratio[:, :-k], ratio[:, -k:]
    with np.errstate(invalid="ignore"):
        reached = (head >= reach).any(axis=1)
        below = np.all(np.where(np.isfinite(last), last < level, True), axis=1) & np.isfinite(last).any(axis=1)
    return reached & below


def summarize(paths, every: int = 100) -> xr.Dataset:
    """One curve per (loss, width, η): mean ± s.e. of F(t) (every `every` steps) and of
    λ_max·η/2 at the spectrum steps, the number of runs and how many escaped; per run (`run`
    dimension) its curve, seed, final training accuracy, mean ratio over the last `TAIL` of
    its spectra and whether it escaped."""
    groups: dict[tuple, list] = {}
    for p in paths:
        run = Run.open(p)
        ds, cfg = run.ds, run.config
        if cfg.optimizer != "gd":  # the paper's Fig. 1 is gradient descent against 2/η
            raise LandscapeError(
                f"{p}: a {cfg.optimizer} run; Fig. 1 holds gradient descent against 2/η — "
                "`landscape plot edges` draws any optimizer against its own threshold"
            )
        for eta in np.unique(ds.eta.values):
            sub = ds.isel(replica=np.flatnonzero(ds.eta.values == eta))
            groups.setdefault((cfg.loss, cfg.width, float(eta)), []).append(sub)
    if not groups:
        raise LandscapeError("no replicas to summarise")
    keys = sorted(groups)
    n = min(p.sizes["step"] for g in groups.values() for p in g)
    nh = min(p.sizes["hstep"] for g in groups.values() for p in g)
    if nh == 0:
        raise LandscapeError("the stores hold no spectra (λ_max); record with --hessian-every")
    steps = np.arange(0, n, every)
    hsteps = next(iter(groups.values()))[0].hstep.values[:nh]
    names = ("loss_mean", "loss_sem", "ratio_mean", "ratio_sem", "n_runs", "n_escaped", "final_train_acc")
    out: dict[str, list] = {k: [] for k in names}
    runs: dict[str, list] = {k: [] for k in ("run_curve", "run_seed", "run_train_acc", "run_tail_ratio", "run_escaped")}
    for c, key in enumerate(keys):
        parts = groups[key]
        F = np.concatenate([p.loss.values[:, steps] for p in parts])
        ratio = np.concatenate([p.eigval.values[:, :nh, 0] for p in parts]) * key[2] / 2
        for name, x in (("loss", F), ("ratio", ratio)):
            out[f"{name}_mean"].append(np.nanmean(x, 0))
            sem = np.nanstd(x, 0, ddof=1) / np.sqrt(x.shape[0]) if x.shape[0] > 1 else np.full(x.shape[1], np.nan)
            out[f"{name}_sem"].append(sem)
        esc = escaped(ratio)
        acc = np.concatenate([p.train_acc.values[:, n - 1] for p in parts])
        out["n_runs"].append(F.shape[0])
        out["n_escaped"].append(int(esc.sum()))
        out["final_train_acc"].append(float(np.mean(acc)))
        # per run: does leaving the edge go with learning the data? (the groups' means hide it)
        with np.errstate(all="ignore"):
            tail = np.nanmean(ratio[:, -_tail_len(nh, TAIL) :], axis=1)
        runs["run_curve"] += [c] * len(acc)
        runs["run_seed"] += [int(v) for p in parts for v in p.seed.values]
        runs["run_train_acc"] += acc.tolist()
        runs["run_tail_ratio"] += tail.tolist()
        runs["run_escaped"] += esc.tolist()
    dims = {"loss": ("curve", "step"), "ratio": ("curve", "hstep")}
    data = {
        k: (dims[k.split("_")[0]] if k.endswith(("mean", "sem")) else ("curve",), np.array(v)) for k, v in out.items()
    }
    data.update({k: (("run",), np.array(v)) for k, v in runs.items()})
    return xr.Dataset(
        data,
        coords={
            "curve": np.arange(len(keys)),
            "loss_name": ("curve", np.array([k[0] for k in keys], dtype=object)),
            "width": ("curve", np.array([k[1] for k in keys])),
            "eta": ("curve", np.array([k[2] for k in keys])),
            "step": steps,
            "hstep": hsteps,
        },
        attrs={"escape_level": LEVEL, "escape_reach": REACH, "escape_tail": TAIL, "steps": int(n)},
    )


def draw(summary: xr.Dataset, path):
    """(a) mean F(t), log scale; (b) mean λ_max/(2/η) over time with standard-error bands and
    the edge at 1; one colour per (width, η)."""
    from .figures import Figure, save

    fig = Figure(figsize=(10, 3.8), constrained_layout=True)
    a1, a2 = fig.subplots(1, 2)
    for c in range(summary.sizes["curve"]):
        s = summary.isel(curve=c)
        label = f"{str(s.loss_name.values).upper()} width {int(s.width)}, η = {float(s.eta):g} ({int(s.n_runs)} runs)"
        a1.plot(summary.step, s.loss_mean, lw=0.7, label=label)
        (line,) = a2.plot(summary.hstep, s.ratio_mean, lw=0.8, label=label)
        lo, hi = s.ratio_mean - s.ratio_sem, s.ratio_mean + s.ratio_sem
        a2.fill_between(summary.hstep, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    a2.axhline(1.0, color="k", ls="--", lw=0.8, label="λ_max = 2/η")
    a1.set_yscale("log")
    a1.set_title("(a) mean loss F(t)", fontsize=9)
    a2.set_title("(b) mean λ_max / (2/η) ± s.e.", fontsize=9)
    for a in (a1, a2):
        a.set_xlabel("t")
        a.ticklabel_format(axis="x", style="sci", scilimits=(0, 4))  # 200 000 steps: ×10⁵, not run-together digits
        a.legend(fontsize=7)
    return save(fig, path)


def sharpness_over_edge(ds: xr.Dataset, optimizer: str) -> tuple[np.ndarray, str]:
    """(R, H) the recorded sharpness the optimizer's threshold applies to, over that threshold,
    at the spectrum steps: λ1(H) for gd and the momentum methods, λ1(P⁻¹H) for rmsprop and adam
    (recorded with --precond-k), and its name."""
    name = sharpness_var(optimizer)
    if name not in ds:
        raise LandscapeError(f"a {optimizer} run's threshold applies to λ(P⁻¹H): record it with --precond-k")
    label = "λ1(H)" if name == "eigval" else "λ1(P⁻¹H)"
    return ds[name].values[:, :, 0] / edge_of(ds)[:, None], label


def hovering(paths) -> xr.Dataset:
    """Where each run's sharpness sits against its optimizer's own threshold: per (store, η),
    the median over replicas of each replica's median sharpness/threshold over the second half
    of its recorded spectra (up to its stop), with the 10 % and 90 % quantiles across replicas.
    A run at its edge reads ≈ 1 (Cohen et al. 2022: Adam's λ1(P⁻¹H) at 38/η for β1 = 0.9)."""
    from landscape.problem.optimizers import label as rule

    rows: list[dict] = []
    for p in paths:
        run = Run.open(p)
        ds, cfg = run.ds, run.config
        ratio, label = sharpness_over_edge(ds, cfg.optimizer)
        per = np.full(ratio.shape[0], np.nan)
        for r in range(ratio.shape[0]):
            x = ratio[r][np.isfinite(ratio[r])]
            if x.size >= 2:
                per[r] = np.median(x[x.size // 2 :])
        names = np.array([rule(cfg.optimizer, r.beta, r.beta1) for r in cfg.replicas()])
        edge = edge_of(ds)
        for name, eta in dict.fromkeys(zip(names, ds.eta.values)):  # a row per (optimizer and β, η)
            pick = (names == name) & np.isclose(ds.eta.values, eta)
            m = pick & np.isfinite(per)
            q = np.quantile(per[m], [0.1, 0.5, 0.9]) if m.any() else np.full(3, np.nan)
            rows.append({"store": str(p), "optimizer": str(name), "loss_name": cfg.loss, "eta": float(eta),
                         "sharpness": label, "threshold": float(edge[pick][0]),
                         "n_runs": int(m.sum()), "q10": q[0], "median": q[1], "q90": q[2]})  # fmt: skip
    if not rows:
        raise LandscapeError("no runs given")
    return xr.Dataset({k: ("row", np.array([r[k] for r in rows], dtype=object if isinstance(rows[0][k], str) else None))
                       for k in rows[0]})  # fmt: skip


def draw_edges(runs: list, path, eta: float | None = None):
    """One panel per run (`runs`: opened runs): the sharpness over the optimizer's own threshold
    through training, a thin line per replica of one η (`eta`, default the run's middle η), with
    the threshold at 1; each panel titled by its optimizer, rule and loss."""
    from landscape.problem.optimizers import describe

    from .figures import Figure, save

    n = len(runs)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = Figure(figsize=(4.2 * cols, 3.0 * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, run in zip(axes, runs):
        ds, cfg = run.ds, run.config
        ratio, label = sharpness_over_edge(ds, cfg.optimizer)
        etas = np.unique(ds.eta.values)
        e = etas[len(etas) // 2] if eta is None else eta
        pick = np.flatnonzero(np.isclose(ds.eta.values, e))
        if pick.size == 0:
            raise LandscapeError(f"{run.path}: no replica with η = {e:g} (it has {', '.join(f'{v:g}' for v in etas)})")
        for r in pick:
            ax.plot(ds.hstep.values, ratio[r], lw=0.6, alpha=0.7)
        ax.axhline(1, color="k", ls="--", lw=0.8)
        r0 = cfg.replicas()[pick[0]]  # the first drawn replica's hyper-parameters name the panel
        rule = describe(cfg.optimizer, r0.beta, r0.alpha, r0.beta1, r0.beta2, r0.eps, cfg.bias_correction).split(";")[0]
        ax.set_title(f"{rule}, {cfg.loss.upper()}, η = {e:g}", fontsize=8)
        ax.set_xlabel("step t")
        ax.set_ylabel(f"{label} / threshold", fontsize=8)
        ax.set_ylim(0, 1.6)
    for ax in axes[n:]:
        ax.set_visible(False)
    return save(fig, path)


def sharpening(paths, reach: float = REACH) -> xr.Dataset:
    """Progressive sharpening and the edge, per replica of each store (Cohen et al. 2021's
    measurements): λ1 at the first spectrum, the first spectrum step where the sharpness over the
    threshold (λ1·η/2 for gradient descent) reaches `reach` from below (a run that starts above
    the edge catapults down first: its crossing is the one after that), how many steps the run recorded from
    there, the ratio's mean, minimum and maximum over that hovering phase and, where the store has
    the Gauss–Newton spectrum (`--ggn-k`), the mean of λ1(GGN)/λ1(H) over it. A replica that never
    reaches the edge has reached_at −1 and NaN for the phase's statistics."""
    rows: list[dict] = []
    for p in paths:
        run = Run.open(p)
        ds, cfg = run.ds, run.config
        ratio, _ = sharpness_over_edge(ds, cfg.optimizer)
        hs = ds.hstep.values
        ggn = ds["ggn_eigval"].values[:, :, 0] / ds["eigval"].values[:, :, 0] if "ggn_eigval" in ds else None
        edge = edge_of(ds)
        last = int(ds.attrs.get("steps_done", cfg.steps))
        for r in range(ratio.shape[0]):
            row = {"store": str(p), "replica": r, "loss_name": cfg.loss, "eta": float(ds.eta.values[r]),
                   "threshold": float(edge[r]), "lambda0": float(ds["eigval"].values[r, 0, 0]),
                   "reached_at": -1, "hover_steps": 0, "mean": np.nan, "min": np.nan, "max": np.nan,
                   "ggn_over_h": np.nan}  # fmt: skip
            below = np.flatnonzero(ratio[r] < reach)
            at = np.flatnonzero(ratio[r] >= reach)
            if below.size and at.size:
                at = at[at > below[0]]
            if at.size:
                phase = slice(at[0], None)
                x = ratio[r, phase]
                x = x[np.isfinite(x)]
                row.update(reached_at=int(hs[at[0]]), hover_steps=last - int(hs[at[0]]), mean=float(x.mean()),
                           min=float(x.min()), max=float(x.max()))  # fmt: skip
                if ggn is not None:
                    row["ggn_over_h"] = float(np.nanmean(ggn[r, phase]))
            rows.append(row)
    if not rows:
        raise LandscapeError("no runs given")
    return xr.Dataset({k: ("row", np.array([r[k] for r in rows], dtype=object if isinstance(rows[0][k], str) else None))
                       for k in rows[0]})  # fmt: skip


def draw_sharpening(runs: list, path):
    """One panel per run: λ1(H) against the step for every replica, its 2/η (the optimizer's
    threshold) dashed in the same colour, λ1 of the Gauss–Newton matrix dotted where recorded."""
    from .figures import Figure, save

    n = len(runs)
    fig = Figure(figsize=(5.0 * n, 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n, squeeze=False)).ravel()
    for ax, run in zip(axes, runs):
        ds, cfg = run.ds, run.config
        edge = edge_of(ds)
        for r in range(ds.sizes["replica"]):
            (line,) = ax.plot(ds.hstep.values, ds["eigval"].values[r, :, 0], lw=0.9,
                              label=f"η = {float(ds.eta.values[r]):g}")  # fmt: skip
            ax.axhline(edge[r], color=line.get_color(), ls="--", lw=0.8)
            if "ggn_eigval" in ds:
                ax.plot(ds.hstep.values, ds["ggn_eigval"].values[r, :, 0], color=line.get_color(), ls=":", lw=0.9)
        ax.set_title(f"{cfg.loss.upper()}: λ1(H) solid, λ1(GGN) dotted, 2/η dashed", fontsize=8)
        ax.set_xlabel("step t")
        ax.set_ylabel("sharpness λ1")
        ax.legend(fontsize=7)
    return save(fig, path)
