"""The paper's figures from recorded stores and analysis results.

Drawn on matplotlib `Figure` objects (no pyplot), so no backend is chosen or changed,
in a notebook or anywhere else; matplotlib is the optional extra `landscape[plot]`.

fig1: drawn by `edge_of_stability.draw` (mean F(t) and λ_max/(2/η) per width and η);
fig2: Γ_i(t), F(t), training accuracy, λ1 and λ2 with 2/η, and loss slices;
fig4: λ_max at the first instability vs η with the dashed 2/η (`draw_fig4_optimizers`: against each
      optimizer's own threshold).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from landscape import LandscapeError
from landscape.machine.extras import require
from landscape.runs.opened import Run

Figure = require("matplotlib.figure", "plot", "drawing figures").Figure


def save(fig, path) -> list[str]:
    """Write `path` as PNG and PDF (whatever suffix it was given)."""
    base = Path(path)
    out = []
    for suffix in (".png", ".pdf"):
        p = base.with_suffix(suffix)
        try:
            fig.savefig(p, dpi=130)
        except OSError as exc:  # a full disk, a folder gone: no half-written figure left behind
            p.unlink(missing_ok=True)
            raise LandscapeError(f"cannot write figure {p}: {exc.strerror or exc}") from None
        out.append(str(p))
    return out


def slice_panel(ax, r: xr.Dataset, step: int):
    """One slice: filled contours of F, iterates as dots joined by arrows, x_t a red cross."""
    cs = ax.contourf(r.a, r.b, r.loss.T, levels=30, cmap="viridis")
    ia, ib = r.iter_a.values, r.iter_b.values
    for i in range(len(ia) - 1):
        ax.annotate(
            "",
            xy=(ia[i + 1], ib[i + 1]),
            xytext=(ia[i], ib[i]),
            arrowprops=dict(arrowstyle="->", color="lime", alpha=0.5, lw=0.8),
        )
    ax.plot(ia, ib, "o", color="lime", ms=3)
    ax.plot([0], [0], "x", color="red", ms=9, mew=2)
    ax.set_title(f"t = {int(step)}", fontsize=9)
    ax.set_xlabel("a (v1)", fontsize=8)
    ax.locator_params(axis="x", nbins=3)  # three panels in a row: more labels run into each other
    return cs


def draw_slices(res: xr.Dataset, path):
    """The right panels of Fig. 2 alone."""
    n = res.sizes["slice_step"]
    fig = Figure(figsize=(3.2 * n, 3.2), constrained_layout=True)
    axes = fig.subplots(1, n, squeeze=False)
    for ax, s in zip(axes[0], res.slice_step.values):
        fig.colorbar(slice_panel(ax, res.sel(slice_step=s), s), ax=ax, shrink=0.8)
    axes[0][0].set_ylabel("b (v2)")
    return save(fig, path)


def fig2_series(store, replica: int = 0) -> xr.Dataset:
    """What Fig. 2's top row draws, of one replica: Γ, F, training accuracy, λ1 and λ2, with
    η and the loss's name (small: a summary that redraws the figure without the store)."""
    run = Run.open(store)
    run.check_replicas([replica])
    r = run.ds.isel(replica=replica)[["gamma", "loss", "train_acc", "eigval"]].load()
    return r.assign_attrs(loss_name=run.config.loss)


def draw_fig2(path, series: xr.Dataset, slices: xr.Dataset | None = None):
    """Γ_i(t), F(t), training accuracy, λ1 and λ2 with 2/η (top; `fig2_series`) and the
    slices (bottom)."""
    r = series
    eta = float(r.eta)
    n = 0 if slices is None else slices.sizes["slice_step"]
    fig = Figure(figsize=(13, 6.5 if n else 3.4), constrained_layout=True)
    gs = fig.add_gridspec(2 if n else 1, max(4, n))
    t = r.step.values
    ax = fig.add_subplot(gs[0, 0])
    for c in range(r.sizes["class"]):
        ax.plot(t, r.gamma.isel(**{"class": c}), lw=0.8, label=f"Γ{c}")
    ax.set_title("(a) Γ_i(t)", fontsize=9)
    ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[0, 1])
    ax.plot(t, r.loss, lw=0.6)
    ax.set_yscale("log")
    ax.set_title(f"(b) F(t), {r.attrs['loss_name'].upper()}", fontsize=9)
    ax = fig.add_subplot(gs[0, 2])
    ax.plot(t, r.train_acc, ",", ms=1)
    ax.set_title("(c) training accuracy", fontsize=9)
    ax = fig.add_subplot(gs[0, 3])
    ax.plot(r.hstep, r.eigval.isel(eig=0), lw=0.8, label="λ1")
    ax.plot(r.hstep, r.eigval.isel(eig=1), lw=0.8, label="λ2")
    ax.axhline(2 / eta, color="k", ls="--", lw=0.8, label="2/η")
    ax.set_title("(d) λ1, λ2", fontsize=9)
    ax.legend(fontsize=7)
    for a in fig.axes:
        a.set_xlabel("t", fontsize=8)
    for i in range(n):
        assert slices is not None
        ax = fig.add_subplot(gs[1, i])
        s = slices.slice_step.values[i]
        slice_panel(ax, slices.sel(slice_step=s), s)
        if i == 0:
            ax.set_ylabel("b (v2)", fontsize=8)
    return save(fig, path)


def draw_fig4(summary: xr.Dataset, path):
    """λ1 at the first instability (branch mean) against η, log–log with the dashed 2/η (left),
    and λ1/(2/η) against η (right: the gap to the edge, which the log scale hides). One colour
    per loss, one marker per (A, T) (shape: A; filled: the shorter T), each condition's points
    nudged along η so they do not hide each other; standard errors capped, the mean branch
    spread a pale bar without caps (left)."""
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    colours = {"dce": "tab:blue", "dmse1": "tab:orange", "dmse2": "tab:green", "ce": "tab:purple", "mse": "tab:red"}
    L, A, T = (summary[k].values for k in ("loss_name", "amplitude", "period"))
    etas = summary.eta.values.astype(float)
    amps, periods = sorted({float(a) for a in A}), sorted({int(t) for t in T})
    shapes = dict(zip(amps, "os^DvP*X"))
    pairs = [(a, t) for a in amps for t in periods]
    nudge = {p: 1.035 ** (i - (len(pairs) - 1) / 2) for i, p in enumerate(pairs)}
    losses = sorted({str(v) for v in L}, key=lambda v: list(colours).index(v) if v in colours else 99)
    for l in losses:
        for a, t in pairs:
            m = (L == l) & (A == a) & (T == t) & np.isfinite(summary.lambda1_mean.values)
            if not m.any():
                continue
            order = np.argsort(etas[m])
            x, y = etas[m][order], summary.lambda1_mean.values[m][order]
            se = summary.lambda1_sem.values[m][order]
            c = colours.get(l, "k")
            style = dict(marker=shapes[a], ls="none", ms=4.5, color=c, mfc=c if t == periods[0] else "white", capsize=2)
            ax.errorbar(x * nudge[(a, t)], y, yerr=se, **style)
            ax2.errorbar(x * nudge[(a, t)], y * x / 2, yerr=se * x / 2, **style)
            if "spread_mean" in summary:
                half = np.nan_to_num(summary.spread_mean.values[m][order]) / 2
                ax.errorbar(x * nudge[(a, t)], y, yerr=half, ls="none", lw=4, alpha=0.2, color=c)
    grid = np.geomspace(etas.min() / 1.3, etas.max() * 1.3, 50)
    ax.plot(grid, 2 / grid, "k--", lw=1)
    ax2.axhline(1, color="k", ls="--", lw=1)
    for a_ in (ax, ax2):
        a_.set_xscale("log")
        a_.set_xlabel("η")
    ax.set_yscale("log")
    ax.set_ylabel("λ_max at first instability (branch mean)")
    ax2.set_ylabel("λ_max / (2/η) at first instability")
    key = [Line2D([], [], color=colours.get(l, "k"), marker="o", ls="none", label=l.upper()) for l in losses]
    key.append(Line2D([], [], color="k", ls="--", label="2/η"))
    key += [
        Line2D(
            [],
            [],
            color="0.3",
            marker=shapes[a],
            mfc="0.3" if t == periods[0] else "white",
            ls="none",
            label=f"A={a:g}, T={t}",
        )  # fmt: skip
        for a, t in pairs
    ]
    fig.legend(handles=key, fontsize=7, loc="outside right center", frameon=False)
    return save(fig, path)


def draw_fig4_optimizers(summary: xr.Dataset, path):
    """Fig. 4 across optimizers: the sharpness at the first instability (λ(H), or λ(P⁻¹H) for
    rmsprop and adam) against each optimizer's own threshold, log–log with the diagonal (left),
    and their ratio (right). One colour per optimizer and threshold rule (its β read from
    threshold·η), one marker per loss; standard errors capped."""
    from matplotlib.lines import Line2D

    fig = Figure(figsize=(10, 4), layout="constrained")
    ax, ax2 = fig.subplots(1, 2)
    opt, L = summary.optimizer.values, summary.loss_name.values
    edge, eta = summary.threshold.values.astype(float), summary.eta.values.astype(float)
    # the threshold's rule per optimizer (its β): threshold·η is the same for all η of one rule
    rule = np.array([f"{o} ({e * h:.3g}/η)" for o, e, h in zip(opt, edge, eta)], dtype=object)
    seen = np.isfinite(summary.lambda1_mean.values)
    rules = list(dict.fromkeys(sorted(rule, key=lambda r: (r.split()[0] != "gd", r))))
    colours = dict(zip(rules, [f"C{i}" for i in range(10)]))
    losses = sorted({str(v) for v in L})
    shapes = dict(zip(losses, "os^DvP"))
    for r in rules:
        for loss in losses:
            m = (rule == r) & (L == loss) & np.isfinite(summary.lambda1_mean.values)
            if not m.any():
                continue
            x, y, se = edge[m], summary.lambda1_mean.values[m], summary.lambda1_sem.values[m]
            style = dict(marker=shapes[loss], ls="none", ms=5, color=colours[r], capsize=2)
            ax.errorbar(x, y, yerr=se, **style)
            ax2.errorbar(x, summary.ratio_mean.values[m], yerr=summary.ratio_sem.values[m], **style)
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    finite = edge[seen] if seen.any() else edge[np.isfinite(edge)]
    grid = np.geomspace(finite.min() / 1.5, finite.max() * 1.5, 20)
    ax.plot(grid, grid, "k--", lw=1)
    ax2.axhline(1, color="k", ls="--", lw=1)
    for a_ in (ax, ax2):
        a_.set_xscale("log")
        a_.set_xlim(grid[0], grid[-1])
        a_.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        a_.xaxis.set_major_formatter(ScalarFormatter())
        a_.xaxis.set_minor_formatter(NullFormatter())
        a_.set_xlabel("the optimizer's threshold (2/η for gd)")
    ax.set_yscale("log")
    ax.set_ylabel("sharpness at first instability\n(λ(P⁻¹H) for adam, rmsprop)")
    ax2.set_ylabel("sharpness / threshold at first instability")
    key = [Line2D([], [], color=colours[r], marker="o", ls="none",
                  label=r if seen[rule == r].any() else f"{r}: no first instability") for r in rules]  # fmt: skip
    key += [Line2D([], [], color="0.3", marker=shapes[loss], ls="none", label=loss.upper()) for loss in losses]
    key.append(Line2D([], [], color="k", ls="--", label="the threshold"))
    fig.legend(handles=key, fontsize=7, loc="outside right center", frameon=False)
    return save(fig, path)


def _dtype_note(res: xr.Dataset) -> str:
    """A view evaluated in float32 says so on its figure."""
    return ", evaluated in float32" if res.attrs.get("dtype") == "float32" else ""


def draw_surface(res: xr.Dataset, path):
    """A surface from `surfaces.surface`: filled log-contours of F_t with θ_t marked (and the
    path, for PCA directions) beside the 3-D view; a 1-D surface as curves of F and accuracy."""
    kind, t = res.attrs["directions"], res.attrs["step"]
    if "b" not in res.dims:
        title = f"t = {t}, replica {res.attrs['replica']}{_dtype_note(res)}"
        return _along_a_line(res, "a", f"F_t ({res.attrs['loss_name']})", f"a ({kind} direction)", title, path)
    fig = Figure(figsize=(10, 4.2), constrained_layout=True)
    ax = fig.add_subplot(1, 2, 1)
    logF = np.log10(np.maximum(res.loss.values, 1e-300))
    cs = ax.contourf(res.a, res.b, logF.T, levels=30, cmap="viridis")
    fig.colorbar(cs, ax=ax, label="log10 F_t")
    ax.plot([0], [0], "x", color="red", ms=9, mew=2, label="θ_t")
    if "path" in res:
        p = res.path.values
        ax.plot(p[:, 0], p[:, 1], "-o", color="white", ms=2.5, lw=0.8, label="saved path")
        ev = res.explained.values
        ax.set_xlabel(f"PC1 ({ev[0]:.0%} of the path's variance)")
        ax.set_ylabel(f"PC2 ({ev[1]:.0%})")
    else:
        ax.set_xlabel(f"a ({kind} direction 1)")
        ax.set_ylabel(f"b ({kind} direction 2)")
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title(f"F_t, {res.attrs['loss_name'].upper()}, t = {t}{_dtype_note(res)}", fontsize=9)
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
    A, B = np.meshgrid(res.a.values, res.b.values, indexing="ij")
    ax3.plot_surface(A, B, logF, cmap="viridis", linewidth=0, antialiased=True)
    ax3.set_xlabel("PC1" if kind == "pca" else "a")
    ax3.set_ylabel("PC2" if kind == "pca" else "b")
    ax3.set_title("log10 F_t", fontsize=9)  # a z label is clipped by the figure's edge
    return save(fig, path)


def draw_interpolation(res: xr.Dataset, path):
    """F and accuracy along θ(α) = (1 − α)θ_a + αθ_b, the endpoints marked."""
    title = f"t_a = {res.attrs['step_a']} → t_b = {res.attrs['step_b']}{_dtype_note(res)}"
    return _along_a_line(res, "alpha", "F (a's schedule)", "α", title, path, marks=(0, 1))


def _along_a_line(res: xr.Dataset, x: str, loss_label: str, xlabel: str, title: str, path, marks=()):
    """F and the static loss (log) beside the two accuracies, along the coordinate `x`."""
    fig = Figure(figsize=(8, 3.2), constrained_layout=True)
    ax1, ax2 = fig.subplots(1, 2)
    ax1.semilogy(res[x], res.loss, label=loss_label)
    ax1.semilogy(res[x], res.loss_static, "--", label="static loss")
    ax2.plot(res[x], res.train_acc, label="train")
    ax2.plot(res[x], res.val_acc, label="validation")
    for m in marks:
        ax1.axvline(m, color="k", lw=0.6, ls=":")
        ax2.axvline(m, color="k", lw=0.6, ls=":")
    ax1.set_xlabel(xlabel)
    ax2.set_xlabel(xlabel)
    ax1.set_ylabel("loss (log scale)")
    ax2.set_ylabel("accuracy")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save(fig, path)


def draw_density(res: xr.Dataset, recorded: xr.Dataset | None, path):
    """ρ(λ, t) as a heat map (log colour) with the recorded λ1, λ2, the bottom eigenvalue and
    2/η on it; one step: the density as a curve."""
    eta = res.attrs["eta"]
    lam = res.lam.values
    if res.sizes["step"] == 1:
        fig = Figure(figsize=(6, 3.6), constrained_layout=True)
        ax = fig.add_subplot()
        ax.semilogy(lam, np.maximum(res.density.values[0], 1e-12))
        ax.axvline(2 / eta, color="k", ls="--", lw=0.8, label="2/η")
        ax.axvline(float(res.lambda_min.values[0, 0]), color="tab:red", ls=":", lw=0.8, label="λ_min")
        ax.set_xlabel("λ")
        ax.set_ylabel("ρ(λ)")
        ax.legend(fontsize=7)
        ax.set_title(f"Hessian eigenvalue density, t = {int(res.step.values[0])}", fontsize=9)
        return save(fig, path)
    fig = Figure(figsize=(8, 4.5), constrained_layout=True)
    ax = fig.add_subplot()
    t = res.step.values
    z = np.log10(np.maximum(res.density.values.T, 1e-8))
    mesh = ax.pcolormesh(t, lam, z, shading="nearest", cmap="magma", vmin=max(z.min(), z.max() - 6))
    fig.colorbar(mesh, ax=ax, label="log10 ρ(λ, t)")
    if recorded is not None and recorded.sizes.get("hstep", 0):
        ax.plot(recorded.hstep, recorded.eigval.isel(eig=0), color="cyan", lw=0.8, label="λ1 (recorded)")
        ax.plot(recorded.hstep, recorded.eigval.isel(eig=1), color="lime", lw=0.6, label="λ2 (recorded)")
    ax.plot(t, res.lambda_min.values[:, 0], "o-", color="white", ms=2.5, lw=0.8, label="λ_min")
    edge = 2 / eta
    off = "" if lam.min() <= edge <= lam.max() else (" (above the axis)" if edge > lam.max() else " (below)")
    ax.axhline(edge, color="w", ls="--", lw=0.8, label=f"2/η = {edge:g}{off}")
    ax.set_xlim(t.min(), t.max())
    ax.set_ylim(lam.min(), lam.max())
    ax.set_xlabel("t")
    ax.set_ylabel("λ")
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"ρ(λ, t), {res.attrs['loss_name'].upper()}, η = {eta:g}", fontsize=9)
    return save(fig, path)


def surface_html(res: xr.Dataset, path) -> str:
    """An interactive 3-D view of a 2-D surface (log10 F_t; with the path for PCA directions)
    as one self-contained HTML file (plotly, the optional extra `html`)."""
    go = require("plotly.graph_objects", "html", "an interactive surface (--html)")
    if "b" not in res.dims:
        raise LandscapeError("--html draws 2-D surfaces (--dims 2)")
    z = np.log10(np.maximum(res.loss.values, 1e-300))
    fig = go.Figure(go.Surface(x=res.a.values, y=res.b.values, z=z.T, colorscale="Viridis",
                               colorbar=dict(title="log10 F_t")))  # fmt: skip
    if "path" in res:
        p = res.path.values
        ia = np.clip(np.searchsorted(res.a.values, p[:, 0]), 0, res.sizes["a"] - 1)
        ib = np.clip(np.searchsorted(res.b.values, p[:, 1]), 0, res.sizes["b"] - 1)
        fig.add_trace(go.Scatter3d(x=p[:, 0], y=p[:, 1], z=z[ia, ib], mode="lines+markers", name="saved path",
                                   line=dict(color="white", width=4), marker=dict(size=3)))  # fmt: skip
    fig.update_layout(
        title=f"F_t, {res.attrs['loss_name'].upper()}, t = {res.attrs['step']} ({res.attrs['directions']} directions)",
        scene=dict(xaxis_title="a", yaxis_title="b", zaxis_title="log10 F_t"),
    )
    fig.write_html(str(path), include_plotlyjs=True, full_html=True)
    return str(path)


def bifurcation_series(source, replica: int, start: int, stop: int, exponents: int = 0) -> xr.Dataset:
    """What the bifurcation diagram draws for one replica over steps [start, stop): the iterate
    projected on the top Hessian eigenvector at the replica's first instability (or at `start`
    without one), x_t = (θ_t − θ_ref)·v1, by exact replay; the loss; and with `exponents` = W
    the top Lyapunov exponent over consecutive windows of W steps."""
    import torch

    from landscape.curvature.spectrum import top_k

    from .bifurcations import detect
    from .lyapunov import lyapunov

    run = Run.open(source)
    (r,) = run.check_replicas([replica])
    done = run.steps_done
    if not 0 <= start < stop <= done:
        raise LandscapeError(f"steps {start} … {stop - 1} are not all recorded (0 … {done - 1})")
    det = detect(run, lambda_source="recorded")  # chaos marked only where an exponent confirms it
    first = det.first_instability.values[r]
    ref = int(first) if np.isfinite(first) and start <= first < stop else start
    theta = run.params_at(list(range(start, stop)), [r])[0]
    eng = run.engine([r])
    th_ref = torch.as_tensor(theta[ref - start], dtype=eng.dtype)[None]
    v1 = top_k(eng, th_ref, ref, 2, tol=1e-8, max_iter=200).eigvecs[0, 0].double().numpy()
    x = (theta - theta[ref - start]) @ v1
    out = xr.Dataset(
        {"x": ("step", x), "loss": ("step", run.ds.loss.values[r, start:stop])},
        coords={"step": np.arange(start, stop), "level": det.level.values},
        attrs={"replica": r, "reference_step": ref, "eta": float(run.ds.eta.values[r])},
    )
    out["onset"] = (("cycle", "level"), det.onset.values[r])
    if exponents:
        lyap = lyapunov(run, k=1, start=start, steps=stop - start, replicas=[r], window=exponents)
        w = lyap.window_exponent.values[0, 0]
        out["exponent"] = ("window", w)
        out["window_start"] = ("window", start + exponents * np.arange(w.size))
    return out


def draw_bifurcation(series: xr.Dataset, path, floquet: xr.Dataset | None = None):
    """The bifurcation diagram: x_t = (θ_t − θ_ref)·v1 as dots against the step (each period's
    branches separate), the loss beneath, the detector's onsets as vertical lines (p2 solid,
    p4 dashed, p8 dotted, chaos red), the multipliers' −1 crossings (`floquet`: a bifurcations
    result with onset_floquet) as triangles, and the windowed top exponent at the bottom."""
    rows = 3 if "exponent" in series else 2
    fig = Figure(figsize=(8, 2.2 * rows + 0.6), layout="constrained")
    axes = fig.subplots(rows, 1, sharex=True)
    t = series.step.values
    axes[0].plot(t, series.x.values, ",", color="k", alpha=0.6)
    axes[0].set_ylabel("(θ_t − θ_ref)·v1")
    axes[1].semilogy(t, series.loss.values, lw=0.6)
    axes[1].set_ylabel("F_t")
    styles = {"p2": ("C0", "-"), "p4": ("C1", "--"), "p8": ("C2", ":"), "p16": ("C4", ":"), "chaos": ("C3", "-")}
    levels = list(series.level.values)
    on = series.onset.values
    for lvl, (c, ls) in styles.items():
        steps = on[:, levels.index(lvl)]
        for s in steps[np.isfinite(steps) & (steps >= t[0]) & (steps <= t[-1])]:
            for ax in axes:
                ax.axvline(s, color=c, ls=ls, lw=0.9)
            axes[0].text(s, 1.0, f" {lvl}", color=c, fontsize=7, va="top", transform=axes[0].get_xaxis_transform())
    if floquet is not None and "onset_floquet" in floquet:
        fl = floquet.onset_floquet.values[series.attrs["replica"]]
        for lvl, (c, _) in styles.items():
            if lvl in levels:
                s = fl[:, levels.index(lvl)]
                s = s[np.isfinite(s) & (s >= t[0]) & (s <= t[-1])]
                axes[0].plot(s, np.full(s.size, np.nanmax(series.x.values)), "v", color=c, ms=6)
    if "exponent" in series:
        ax = axes[2]
        ax.step(series.window_start.values, series.exponent.values, where="post", color="k", lw=0.9)
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_ylabel("top exponent")
    axes[-1].set_xlabel("step t")
    fig.suptitle(f"replica {series.attrs['replica']}, η = {series.attrs['eta']:g}: detector onsets (lines)"
                 + (", multipliers' −1 crossings (triangles)" if floquet is not None else ""), fontsize=9)  # fmt: skip
    return save(fig, path)
