"""Per-layer curvature: the top eigenvalue of each layer's diagonal Hessian block H_ll.

PyHessian users ask which layer is sharp; H_ll (the second derivatives within one layer,
the other layers held fixed) answers that without forming H. A layer is the set of
parameters sharing a module prefix in the parameter map ("conv1.weight" and "conv1.bias"
are layer "conv1"); H_ll V is H applied to V embedded in the layer's entries (zeros
elsewhere), read back on those entries, so the same batched solver finds its top pair.
λ_max(H_ll) ≤ λ_max(H) for every layer (Cauchy interlacing), which the tests check along
with a dense float64 Hessian.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from landscape.curvature.eigen import BlockOp, EigResult, topk_eigs


@dataclass(frozen=True)
class LayerSpectra:
    """The top eigenvalue of each layer's diagonal Hessian block, per replica."""

    layers: tuple[str, ...]
    eigvals: torch.Tensor  # (R, L)
    residuals: torch.Tensor  # (R, L): ‖H_ll v − λ v‖
    converged: torch.Tensor  # (R, L) bool


def layer_blocks(param_map: Sequence) -> list[tuple[str, slice]]:
    """[(layer, slice of θ)] from [[name, shape], …] in θ's order: contiguous parameters
    with the same module prefix form one layer."""
    out: list[tuple[str, slice]] = []
    off = 0
    for name, shape in param_map:
        size = 1
        for d in shape:
            size *= int(d)
        layer = name.rpartition(".")[0] or name
        if out and out[-1][0] == layer and out[-1][1].stop == off:
            out[-1] = (layer, slice(out[-1][1].start, off + size))
        else:
            out.append((layer, slice(off, off + size)))
        off += size
    return out


def block_op(op: BlockOp, sl: slice, n: int) -> BlockOp:
    """H_ll as a block operator on the layer's entries: (V (Ra, b, m), rows) ↦ (H [0; V; 0])[sl]."""

    def restricted(V: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        full = V.new_zeros(V.shape[0], V.shape[1], n)
        full[..., sl] = V
        return op(full, rows)[..., sl].contiguous()

    return restricted


def layer_top_eigs(
    op: BlockOp,
    blocks: Sequence[tuple[str, slice]],
    *,
    seeds: Sequence[int],
    n: int,
    tol: float = 1e-3,
    max_iter: int = 100,
    salt: int = 0,
    dtype=torch.float64,
    device="cpu",
) -> LayerSpectra:
    """The top eigenvalue of every layer's diagonal block, for every replica (one solve per layer)."""
    out: list[EigResult] = []
    for i, (_, sl) in enumerate(blocks):
        m = sl.stop - sl.start
        out.append(
            topk_eigs(
                block_op(op, sl, n),
                None,
                1,
                seeds=seeds,
                n=m,
                oversample=1 if m > 2 else 0,
                tol=tol,
                max_iter=min(max_iter, max(2, m)),
                salt=salt * 1_000_033 + i + 1,
                dtype=dtype,
                device=device,
            )
        )
    cat = lambda name: torch.cat([getattr(r, name)[:, :1] for r in out], dim=1)
    return LayerSpectra(tuple(b[0] for b in blocks), cat("eigvals"), cat("residuals"), cat("converged"))
