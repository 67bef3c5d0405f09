"""The top-k eigenpairs of every replica's Hessian, the quantity every run records.

Over what every engine provides (`hvp_block(θ, t, Γ)`, its dtype and device), like the
optional quantities of `landscape.curvature.quantities`: the block Lanczos of
`eigen.topk_eigs` (or, for small networks, `eigen.dense_topk` on the whole Hessian), on the
healthy replicas only, so a diverged replica costs no solver time and reads NaN, not
converged. A Hessian that overflows the dtype (θ finite, its curvature not) fails the batch's
`eigh`; each replica is then solved alone and the failing ones read NaN.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch

from landscape.curvature.eigen import EigResult, dense_topk, topk_eigs
from landscape.curvature.healthy import healthy


def top_k(
    engine,
    theta: torch.Tensor,
    t: int,
    k: int = 2,
    *,
    v0: torch.Tensor | None = None,
    tol: float = 1e-3,
    max_iter: int = 100,
    salt: int = 0,
    seeds=None,
    oversample: int = 1,
    dense_below: int = 0,
    G: torch.Tensor | None = None,
    precondition: torch.Tensor | None = None,
    operator: str = "hessian",
) -> EigResult:
    """Top-k eigenpairs of every replica's Hessian of F_t at θ (R, n).

    v0: (R, j, n) warm-start vectors (the previous eigenvectors), or None. The random columns
    of the start block are drawn from `seeds` (one per replica; default 0 … R−1) and `salt`
    (e.g. the step), so a replica's answer does not depend on its batch.
    dense_below: for networks of at most this many parameters, the eigenpairs of the whole
    Hessian (n products, exact) instead of the block Lanczos.
    G: Γ (R, C) at t if the caller already has it (the recorder has its segment's), else Γ(t).
    precondition: P (R, n) > 0, the diagonal preconditioner of an adaptive optimizer
    (`problem.optimizers.preconditioner`): the eigenpairs of the symmetric P^{-1/2} H P^{-1/2},
    whose eigenvalues are those of P⁻¹H (the preconditioned sharpness); the eigenvectors are
    the symmetric matrix's (w = P^{1/2} u for an eigenvector u of P⁻¹H).
    operator: "hessian", or "ggn" for the generalised Gauss–Newton Jᵀ H_out J (`curvature.ggn`).
    """
    R, n = theta.shape
    if v0 is not None and v0.dim() == 2:
        v0 = v0.unsqueeze(1)
    seeds = list(range(R)) if seeds is None else [int(s) for s in seeds]
    G = engine.gamma(t) if G is None else G

    def solve(rows: torch.Tensor) -> EigResult:
        return top_k(engine, theta[rows], t, k, v0=None if v0 is None else v0[rows], tol=tol, max_iter=max_iter,
                     salt=salt, seeds=[seeds[i] for i in rows.tolist()], oversample=oversample,
                     dense_below=dense_below, G=G[rows],
                     precondition=None if precondition is None else precondition[rows],
                     operator=operator)  # fmt: skip

    ok = healthy(theta)
    if not bool(ok.all()):
        idx = ok.nonzero().flatten()
        return _nan_eig(R, k, n, engine) if idx.numel() == 0 else _scatter(solve(idx), idx, R)
    op = engine.hvp_block(theta, t, G) if operator == "hessian" else engine.ggn_block(theta, t, G)
    if precondition is not None:
        op = _preconditioned(op, precondition.to(theta.dtype).rsqrt())
    try:
        if n <= dense_below:
            return dense_topk(op, R, n, k, k + max(oversample, 0), tol, engine.dtype, engine.device)
        return topk_eigs(op, v0, k, seeds=seeds, n=n, oversample=oversample, tol=tol, max_iter=max_iter,
                         salt=salt, dtype=engine.dtype, device=engine.device)  # fmt: skip
    except torch.linalg.LinAlgError:
        if R == 1:
            return _nan_eig(1, k, n, engine)
        return _stack([solve(torch.tensor([r])) for r in range(R)])


def _preconditioned(op, D: torch.Tensor):
    """V ↦ D H D V with D = P^{-1/2} (R, n), row by row of the active replicas."""

    def pre(V, rows):
        d = D[rows].unsqueeze(1)
        return d * op(d * V, rows)

    return pre


def _nan_eig(R: int, k: int, n: int, engine) -> EigResult:
    """No eigenpairs for R replicas: NaN, not converged (diverged replicas, a failed solve)."""
    nan = torch.full((R, k), float("nan"), dtype=engine.dtype, device=engine.device)
    vecs = torch.full((R, k, n), float("nan"), dtype=engine.dtype, device=engine.device)
    return EigResult(nan, vecs, nan.clone(), torch.zeros((R, k), dtype=torch.bool, device=engine.device), 0)


def _scatter(res: EigResult, idx: torch.Tensor, R: int) -> EigResult:
    """The result of the replicas `idx` spread over all R rows: NaN, False or 0 elsewhere."""
    out = {}
    for f in fields(res):
        v = getattr(res, f.name)
        if isinstance(v, torch.Tensor) and v.dim() >= 1 and v.shape[0] == idx.numel():
            fill = False if v.dtype == torch.bool else (float("nan") if v.is_floating_point() else 0)
            full = torch.full((R, *v.shape[1:]), fill, dtype=v.dtype, device=v.device)
            full[idx] = v
            out[f.name] = full
    return replace(res, **out)  # type: ignore[arg-type]


def _stack(parts: list[EigResult]) -> EigResult:
    """One batch's result from single-replica results (blocks dropped where their widths differ)."""
    cat = lambda name: torch.cat([getattr(p, name) for p in parts])  # noqa: E731
    blocks = [p.block for p in parts]
    same = all(b is not None for b in blocks) and len({b.shape for b in blocks}) == 1  # type: ignore[union-attr]
    return EigResult(
        cat("eigvals"), cat("eigvecs"), cat("residuals"), cat("converged"), max(p.iterations for p in parts),
        None, torch.cat(blocks) if same else None,  # type: ignore[arg-type]
    )  # fmt: skip
