"""The optional quantities recorded at the spectrum steps, each declared once.

A `Quantity` says what it is called, which setting of the run turns it on, the arrays it
writes (their extra dimensions, dtype and fill), the values of its own coordinates, and how
it is computed from an engine's Hessian-vector products at θ_t. Everything else is derived
from the declarations in `REGISTRY`: the store's layout and attributes
(`landscape.store.run.layout`), the recorder's buffers and flush (`landscape.recorders.record`),
`landscape check` (which reads every array of the layout), `landscape info`, and the
replay-based recomputation (`landscape.runs.opened.Run.recompute`) that the tests hold the
recording against. Adding a quantity is one declaration here, its knob in `RunConfig`, and
its test.

A quantity is recorded at the spectrum steps (`at="hstep"`, dimension `hstep`) or at every
evaluated step (`at="step"`, the `--eval-every` steps, NaN between them, dimension `step`).

Each computation runs on the healthy replicas only (`on_healthy`): a diverged replica costs
no solver time and reads NaN (not converged). The engine is used only through what every
engine provides: `hvp_block(θ, t, Γ)`, `param_map()`, `_gradient(θ, Γ)`, its dtype and device,
and its optimizer's `preconditioner()` at the step its state is at (the recorder's step).

>>> [q.name for q in REGISTRY]
['layer_spectra', 'trace', 'density', 'bottom', 'grad_norm', 'ggn', 'preconditioned', 'class_accuracy']
>>> sorted(a.name for a in by_name("bottom").arrays)
['lambda_min', 'lambda_min_conv', 'lambda_min_res']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from landscape.curvature import dense
from landscape.curvature.blocks import LayerSpectra, layer_blocks, layer_top_eigs
from landscape.curvature.density import Quadrature, bottomk_eigs, slq
from landscape.curvature.eigen import EigResult
from landscape.curvature.healthy import DIVERGED_BOUND, healthy, on_healthy  # noqa: F401 (their names here too)
from landscape.curvature.spectrum import top_k
from landscape.curvature.trace import TraceResult, hutchinson_trace


@dataclass(frozen=True)
class Array:
    """One stored array of a quantity: [replica, hstep, *dims]."""

    name: str
    dims: tuple[str, ...]
    long_name: str
    dtype: str = "float64"

    @property
    def fill(self):
        return False if self.dtype == "bool" else np.nan


@dataclass(frozen=True)
class Quantity:
    """A recorded quantity. `knob`: the RunConfig field that turns it on (truthy);
    `sizes(cfg, n, layers)`: the length of each of its own dimensions; `coords(cfg, n,
    layers)`: their coordinate values; `compute(engine, θ, t, seeds, cfg, Γ)`: its arrays,
    each (R, *dims), for the healthy replicas (`on_healthy` spreads them over all)."""

    name: str
    knob: str
    arrays: tuple[Array, ...]
    sizes: Callable[..., dict[str, int]]
    compute: Callable[..., dict[str, torch.Tensor]]
    coords: Callable[..., dict[str, np.ndarray]] = field(default=lambda cfg, n, layers: {})
    describe: Callable[..., str] = field(default=lambda cfg: "")
    at: str = "hstep"  # "hstep": at the spectrum steps; "step": at every evaluated step (--eval-every)

    def enabled(self, cfg) -> bool:
        return bool(getattr(cfg, self.knob))

    def shapes(self, cfg, n: int, layers: Sequence[str], C: int) -> dict[str, tuple[tuple[int, ...], str]]:
        """{array: (its shape after (replica, hstep or step), dtype)}; `class` is the store's own
        dimension (C classes)."""
        size = {"class": C, **self.sizes(cfg, n, layers)}
        return {a.name: (tuple(size[d] for d in a.dims), a.dtype) for a in self.arrays}


# --- the computations (also called with explicit settings by the analysis) -------------------
def _seeds(theta, seeds) -> list[int]:
    return list(range(theta.shape[0])) if seeds is None else [int(s) for s in seeds]


def layer_spectra(
    engine, theta, t: int, seeds=None, tol: float = 1e-3, max_iter: int = 100, seed: int = 0, G=None
) -> LayerSpectra:
    """The top eigenvalue (and residual, convergence) of each layer's diagonal Hessian block."""
    blocks = layer_blocks(engine.param_map())
    G, seeds = engine.gamma(t) if G is None else G, _seeds(theta, seeds)
    L = len(blocks)

    def run(idx):
        r = layer_top_eigs(engine.hvp_block(theta[idx], t, G[idx]), blocks, seeds=[seeds[i] for i in idx.tolist()],
                           n=theta.shape[1], tol=tol, max_iter=max_iter, salt=seed, dtype=engine.dtype,
                           device=engine.device)  # fmt: skip
        return {"layer_eigval": r.eigvals, "layer_eigres": r.residuals, "layer_conv": r.converged}

    shapes = {"layer_eigval": ((L,), "float64"), "layer_eigres": ((L,), "float64"), "layer_conv": ((L,), "bool")}
    out = on_healthy(theta, run, shapes)
    return LayerSpectra(tuple(b[0] for b in blocks), out["layer_eigval"], out["layer_eigres"], out["layer_conv"])


def trace(engine, theta, t: int, samples: int = 64, seeds=None, seed: int = 0, G=None) -> TraceResult:
    """Hutchinson's estimate of tr H_t(θ) per replica with its standard error (NaN if diverged)."""
    G, seeds = engine.gamma(t) if G is None else G, _seeds(theta, seeds)

    def run(idx):
        r = hutchinson_trace(engine.hvp_block(theta[idx], t, G[idx]), [seeds[i] for i in idx.tolist()],
                             theta.shape[1], samples, seed, dtype=engine.dtype, device=engine.device)  # fmt: skip
        return {"trace": r.estimate, "trace_se": r.stderr}

    out = on_healthy(theta, run, {"trace": ((), "float64"), "trace_se": ((), "float64")})
    return TraceResult(out["trace"], out["trace_se"], samples)


def density(engine, theta, t: int, steps: int, vectors: int, seeds=None, seed: int = 0, G=None) -> Quadrature:
    """SLQ nodes and weights (R, V, M) of H_t(θ), the vectors drawn from each replica's seed
    and `seed` + t (as the analysis draws them at step t: a recorded density recomputes
    exactly)."""
    G, seeds = engine.gamma(t) if G is None else G, _seeds(theta, seeds)
    M = min(steps, theta.shape[1])

    def run(idx):
        q = slq(engine.hvp_block(theta[idx], t, G[idx]), [seeds[i] for i in idx.tolist()], theta.shape[1], steps,
                vectors, salt=seed + t, dtype=engine.dtype, device=engine.device)  # fmt: skip
        return {"slq_nodes": q.nodes, "slq_weights": q.weights}

    out = on_healthy(theta, run, {"slq_nodes": ((vectors, M), "float64"), "slq_weights": ((vectors, M), "float64")})
    return Quadrature(out["slq_nodes"], out["slq_weights"])


def bottom(engine, theta, t: int, k: int, seeds=None, tol: float = 1e-6, max_iter: int = 400, G=None) -> EigResult:
    """The k smallest eigenpairs of H_t(θ), smallest first, the start block drawn from salt t."""
    G, seeds = engine.gamma(t) if G is None else G, _seeds(theta, seeds)
    n = theta.shape[1]

    def run(idx):
        op = engine.hvp_block(theta[idx], t, G[idx])
        r = bottomk_eigs(op, k, seeds=[seeds[i] for i in idx.tolist()], n=n, tol=tol, max_iter=min(n, max_iter),
                         salt=t, dtype=engine.dtype, device=engine.device)  # fmt: skip
        return {"vals": r.eigvals, "res": r.residuals, "conv": r.converged, "vecs": r.eigvecs}

    shapes = {"vals": ((k,), "float64"), "res": ((k,), "float64"), "conv": ((k,), "bool"), "vecs": ((k, n), "float64")}
    out = on_healthy(theta, run, shapes)
    return EigResult(out["vals"], out["vecs"], out["res"], out["conv"], 0)


def class_accuracy(engine, theta, val: bool = False) -> torch.Tensor:
    """(R, C) the fraction of each class's training (or validation) points each replica
    classifies right: the overall accuracy is their mean weighted by the class counts. NaN for
    a class with no points, without validation data, or for a diverged replica."""
    R, C = theta.shape[0], engine.C
    if val and not engine.has_val:
        return torch.full((R, C), float("nan"), dtype=engine.dtype, device=engine.device)
    y = engine.yv if val else engine.y
    one_hot = torch.nn.functional.one_hot(y, C).to(engine.dtype)  # (P, C)

    def run(idx):
        f = engine._logits(theta[idx], val)
        right = (f.argmax(-1) == y).to(engine.dtype)  # (r, P)
        acc = (right @ one_hot) / one_hot.sum(0)
        return {"acc": torch.where(torch.isfinite(f).all(dim=2).all(dim=1)[:, None], acc, torch.nan)}

    return on_healthy(theta, run, {"acc": ((C,), "float64")})["acc"]


def grad_norm(engine, theta, t: int, G=None) -> torch.Tensor:
    """(R,) ‖∇F_t(θ)‖ (NaN if diverged)."""
    G = engine.gamma(t) if G is None else G
    out = on_healthy(theta, lambda idx: {"grad_norm": engine._gradient(theta[idx], G[idx]).norm(dim=1)},
                     {"grad_norm": ((), "float64")})  # fmt: skip
    return out["grad_norm"]


def full_spectrum(engine, theta, t: int, G=None, vectors: bool = False):
    """Every eigenvalue (R, n) of H_t(θ), ascending, and with `vectors` the eigenvectors (R, n, n)
    (`landscape.curvature.dense`); NaN for a diverged replica. The last answer is kept for the
    same θ, step and Γ (an answer with eigenvectors serves a request without them), so the
    density, trace and bottom pairs of one spectrum step form the Hessian once; `forget` drops
    it (the recorder does after each spectrum step: with vectors it holds R · n² numbers)."""
    G = engine.gamma(t) if G is None else G
    key = (id(engine), t, theta.data_ptr(), theta._version, G.data_ptr(), G._version)
    if _last.get("key") == key and (_last["value"][1] is not None or not vectors):
        return _last["value"]
    n = theta.shape[1]

    def run(idx):
        th, g = theta[idx], G[idx]
        vals, vecs = dense.spectrum(lambda rows: engine.hvp_block(th[rows], t, g[rows]), len(idx), n, engine.dtype,
                                    engine.device, vectors)  # fmt: skip
        return {"vals": vals, **({"vecs": vecs} if vectors else {})}

    shapes = {"vals": ((n,), "float64"), **({"vecs": ((n, n), "float64")} if vectors else {})}
    out = on_healthy(theta, run, shapes)
    value = (out["vals"], out.get("vecs"))
    _last.clear()
    _last.update(key=key, value=value)
    return value


_last: dict = {}  # full_spectrum's one remembered answer


def forget() -> None:
    """Drop full_spectrum's remembered answer (its eigenvectors are R · n² numbers)."""
    _last.clear()


def dense_density(engine, theta, t: int, G=None, vectors: bool = False) -> Quadrature:
    """The exact spectral measure as a quadrature (R, 1, n): the eigenvalues, each of weight 1/n
    (`vectors`: form the eigenvectors too, for the bottom pairs of the same step)."""
    vals, _ = full_spectrum(engine, theta, t, G, vectors)
    n = vals.shape[1]
    return Quadrature(vals[:, None], torch.where(torch.isnan(vals), vals, 1.0 / n)[:, None])


def dense_bottom(engine, theta, t: int, k: int, G=None) -> EigResult:
    """The k smallest eigenpairs from the whole spectrum, smallest first, with their residuals."""
    G = engine.gamma(t) if G is None else G
    vals, vecs = full_spectrum(engine, theta, t, G, vectors=True)
    lam, V = vals[:, :k], vecs[:, :k]
    res = torch.full_like(lam, float("nan"))
    ok = torch.isfinite(lam).all(dim=1)
    if ok.any():
        idx = torch.nonzero(ok).flatten()
        HV = engine.hvp_block(theta[idx], t, G[idx])(V[idx].contiguous(), torch.arange(len(idx)))
        res[idx] = (HV - lam[idx].unsqueeze(-1) * V[idx]).norm(dim=-1)
    conv = res <= 1e-6 * lam.abs().clamp_min(1e-12)
    return EigResult(lam, V, res, conv, 0)


# --- the declarations -----------------------------------------------------------------------
def _ggn(engine, theta, t, seeds, cfg, G):
    r = top_k(engine, theta, t, cfg.ggn_k, tol=cfg.eig_tol, max_iter=cfg.eig_max_iter, salt=t, seeds=seeds,
              oversample=cfg.eig_oversample, G=G, operator="ggn")  # fmt: skip
    return {"ggn_eigval": r.eigvals, "ggn_eigres": r.residuals, "ggn_conv": r.converged}


def _preconditioned(engine, theta, t, seeds, cfg, G):
    """λ(P⁻¹H) with P the adaptive optimizer's preconditioner at step t (the engine holds its
    state there); before the first update there is no preconditioner: NaN, not converged."""
    P = engine.preconditioner()
    k = cfg.precond_k
    if P is None or t == 0:
        nan = torch.full((theta.shape[0], k), float("nan"), dtype=theta.dtype, device=theta.device)
        return {"pre_eigval": nan, "pre_eigres": nan.clone(), "pre_conv": torch.zeros_like(nan, dtype=torch.bool)}
    r = top_k(engine, theta, t, k, tol=cfg.eig_tol, max_iter=cfg.eig_max_iter, salt=t, seeds=seeds,
              oversample=cfg.eig_oversample, G=G, precondition=P)  # fmt: skip
    return {"pre_eigval": r.eigvals, "pre_eigres": r.residuals, "pre_conv": r.converged}


def _class_accuracy(engine, theta, t, seeds, cfg, G):
    return {"class_train_acc": class_accuracy(engine, theta), "class_val_acc": class_accuracy(engine, theta, True)}


def _layer_spectra(engine, theta, t, seeds, cfg, G):
    r = layer_spectra(engine, theta, t, seeds, cfg.eig_tol, cfg.eig_max_iter, seed=t, G=G)
    return {"layer_eigval": r.eigvals, "layer_eigres": r.residuals}


def _trace(engine, theta, t, seeds, cfg, G):
    if cfg.dense_spectrum(theta.shape[1]):  # exact: the sum of the eigenvalues, no sampling error
        vals, _ = full_spectrum(engine, theta, t, G, vectors=cfg.bottom_k > 0)  # the bottom pairs' too
        est = vals.sum(dim=1)
        return {"trace": est, "trace_se": torch.where(torch.isnan(est), est, 0.0)}
    r = trace(engine, theta, t, cfg.trace_samples, seeds, seed=t, G=G)
    return {"trace": r.estimate, "trace_se": r.stderr}


def _density(engine, theta, t, seeds, cfg, G):
    if cfg.dense_spectrum(theta.shape[1]):
        q = dense_density(engine, theta, t, G, vectors=cfg.bottom_k > 0)
    else:
        q = density(engine, theta, t, cfg.density_steps, cfg.density_vectors, seeds, G=G)
    return {"slq_nodes": q.nodes, "slq_weights": q.weights}


def _bottom(engine, theta, t, seeds, cfg, G):
    if cfg.dense_spectrum(theta.shape[1]):
        r = dense_bottom(engine, theta, t, cfg.bottom_k, G)
    else:
        r = bottom(engine, theta, t, cfg.bottom_k, seeds, G=G)
    return {"lambda_min": r.eigvals, "lambda_min_res": r.residuals, "lambda_min_conv": r.converged}


def _grad_norm(engine, theta, t, seeds, cfg, G):
    return {"grad_norm": grad_norm(engine, theta, t, G=G)}


REGISTRY: tuple[Quantity, ...] = (
    Quantity(
        "layer_spectra", "layer_spectra",
        (Array("layer_eigval", ("layer",), "top eigenvalue of each layer's diagonal Hessian block H_ll at θ_t"),
         Array("layer_eigres", ("layer",), "residual ‖H_ll v − λ v‖ of each layer's top pair")),
        sizes=lambda cfg, n, layers: {"layer": len(layers)},
        coords=lambda cfg, n, layers: {"layer": np.array([str(v) for v in layers])},
        compute=_layer_spectra,
        describe=lambda cfg: "per-layer top eigenvalues",
    ),
    Quantity(
        "trace", "trace_samples",
        (Array("trace", (), "Hutchinson estimate of tr H_t(θ_t) (Rademacher probes)"),
         Array("trace_se", (), "standard error of the trace estimate over its probes")),
        sizes=lambda cfg, n, layers: {},
        compute=_trace,
        describe=lambda cfg: f"trace ({cfg.trace_samples} probes, or exact from the whole spectrum)",
    ),
    Quantity(
        "density", "density_steps",
        (Array("slq_nodes", ("vec", "node"),
               "Gauss quadrature nodes of H_t(θ_t) from each SLQ vector (Lanczos Ritz values); with the dense "
               "method (attribute density_method) one vector whose nodes are all the eigenvalues"),
         Array("slq_weights", ("vec", "node"),
               "their weights (squared first components; 1/n each for the dense method): Σ w f(node) = vᵀ f(H) v "
               "for polynomials")),
        sizes=lambda cfg, n, layers: {"vec": cfg.density_vector_count(n), "node": cfg.density_nodes(n)},
        coords=lambda cfg, n, layers: {"vec": np.arange(cfg.density_vector_count(n)),
                                       "node": np.arange(cfg.density_nodes(n))},
        compute=_density,
        describe=lambda cfg: f"density (SLQ, M = {cfg.density_steps}, V = {cfg.density_vectors})",
    ),
    Quantity(
        "bottom", "bottom_k",
        (Array("lambda_min", ("bottom",), "the bottom-k Hessian eigenvalues of F_t at θ_t, smallest first"),
         Array("lambda_min_res", ("bottom",), "residual ‖Hv − λv‖ of each bottom pair"),
         Array("lambda_min_conv", ("bottom",), "bottom pair converged (residual ≤ 1e-6·|λ_min|)", "bool")),
        sizes=lambda cfg, n, layers: {"bottom": cfg.bottom_k},
        coords=lambda cfg, n, layers: {"bottom": np.arange(cfg.bottom_k)},
        compute=_bottom,
        describe=lambda cfg: f"bottom-{cfg.bottom_k} eigenvalues",
    ),
    Quantity(
        "grad_norm", "grad_norm",
        (Array("grad_norm", (), "‖∇F_t(θ_t)‖, the gradient's norm"),),
        sizes=lambda cfg, n, layers: {},
        compute=_grad_norm,
        describe=lambda cfg: "‖∇F‖",
    ),
    Quantity(
        "ggn", "ggn_k",
        (Array("ggn_eigval", ("ggn",), "top-k eigenvalues of the Gauss–Newton matrix Jᵀ H_out J of F_t at θ_t"),
         Array("ggn_eigres", ("ggn",), "residual ‖Gv − λv‖ of each Gauss–Newton pair"),
         Array("ggn_conv", ("ggn",), "Gauss–Newton pair converged (residual ≤ eig-tol·|λ1|)", "bool")),
        sizes=lambda cfg, n, layers: {"ggn": cfg.ggn_k},
        coords=lambda cfg, n, layers: {"ggn": np.arange(cfg.ggn_k)},
        compute=_ggn,
        describe=lambda cfg: f"Gauss–Newton top-{cfg.ggn_k}",
    ),
    Quantity(
        "preconditioned", "precond_k",
        (Array("pre_eigval", ("pre",),
               "top-k eigenvalues of P⁻¹H_t at θ_t, P the adaptive optimizer's preconditioner (the sharpness its "
               "edge applies to)"),
         Array("pre_eigres", ("pre",), "residual of each pair of the symmetric P^{-1/2} H P^{-1/2}"),
         Array("pre_conv", ("pre",), "preconditioned pair converged (residual ≤ eig-tol·|λ1|)", "bool")),
        sizes=lambda cfg, n, layers: {"pre": cfg.precond_k},
        coords=lambda cfg, n, layers: {"pre": np.arange(cfg.precond_k)},
        compute=_preconditioned,
        describe=lambda cfg: f"preconditioned top-{cfg.precond_k}",
    ),
    Quantity(
        "class_accuracy", "class_accuracy",
        (Array("class_train_acc", ("class",), "each class's training accuracy at θ_t (NaN between --eval-every steps)"),
         Array("class_val_acc", ("class",),
               "each class's validation accuracy at θ_t (NaN without validation data and between --eval-every steps)")),
        sizes=lambda cfg, n, layers: {},
        compute=_class_accuracy,
        describe=lambda cfg: "per-class accuracy",
        at="step",
    ),
)  # fmt: skip


def by_name(name: str) -> Quantity:
    return next(q for q in REGISTRY if q.name == name)


def active(cfg) -> list[Quantity]:
    """The quantities a run records (those whose knob it turns on)."""
    return [q for q in REGISTRY if q.enabled(cfg)]


def arrays(cfg=None, at: str | None = None) -> list[str]:
    """The array names of the quantities (of `cfg`'s, or of all; recorded at `at`, or anywhere)."""
    return [a.name for q in (REGISTRY if cfg is None else active(cfg)) if at in (None, q.at) for a in q.arrays]
