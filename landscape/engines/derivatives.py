"""Hand-written gradient and Hessian-vector product of F_t for the batched MLP.

Autograd records a graph every step; for a 600-parameter network that overhead
and the memory traffic of skinny matrices, not the arithmetic, are the cost. Here
the layer part is written out with fused kernels (baddbmm, threshold_backward) in
a feature-major layout (activations (R, width, P), which makes the width × 3
products faster than sample-major on a CPU); the five losses and their logit
derivatives are defined once, in `losses.py`.

The HVP is Pearlmutter's R-operator: a forward pass of directional derivatives
and a backward pass of their gradients, reusing the activations and logit
gradients cached by `gradient` at the same θ. The logits → loss end is written out
(`losses.Head`: ∂F/∂f and ∂²F/∂f² Rf in closed form), so neither pass builds an
autograd graph. The tests check both against a
dense float64 Hessian, torch.func and finite differences.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from landscape.problem.losses import Head
from landscape.problem.mlp import MLPSpec

_thr_bwd = torch.ops.aten.threshold_backward
_tanh_bwd = torch.ops.aten.tanh_backward


@dataclass
class Cache:
    """What the HVP reuses at θ: layer inputs, hidden outputs, ∂F/∂(pre-activations)."""

    theta: torch.Tensor
    h_in: list  # input of layer l, feature-major: Xᵀ (d, P) for l = 0, else (R, width, P)
    dz: list  # ∂ΣF/∂zᵀ of layer l, (R, out_l, P)
    dh: list  # ∂ΣF/∂hᵀ of hidden layer l (input of layer l+1)
    logits: torch.Tensor  # (R, P, C)
    hess: Callable | None  # Rf (…, R, P, C) ↦ ∂²F/∂f² Rf at these logits (losses.Head.hessian)
    rows: torch.Tensor | None = None  # a subset of the replicas (logits and hess stay whole)


def subset(cache: Cache, rows: torch.Tensor) -> Cache:
    """The cache of the replicas `rows` only, so HVPs of converged replicas are not paid for."""
    pick = lambda x: None if x is None else x[rows]
    h_in = [cache.h_in[0] if cache.h_in[0].dim() == 2 else cache.h_in[0][rows]] + [h[rows] for h in cache.h_in[1:]]
    return Cache(
        cache.theta[rows],
        h_in,
        [pick(d) for d in cache.dz],
        [pick(d) for d in cache.dh],
        cache.logits,
        cache.hess,
        rows,
    )


def _hess(cache: Cache) -> Callable:
    if cache.hess is None:
        raise ValueError("this cache was made without for_hvp=True")
    return cache.hess


def act_prime(spec: MLPSpec, g, h):
    """g · σ'(z), written with the layer output h = σ(z) (softplus: σ' = 1 − e^{−βh})."""
    if spec.activation == "relu":
        return _thr_bwd(g, h, 0)
    if spec.activation == "softplus":
        return g * -torch.expm1(-spec.beta * h)
    return _tanh_bwd(g, h)  # g (1 − h²) in one pass


def act_second(spec: MLPSpec, h):
    """σ''(z) from h = σ(z) for the smooth activations (the R-operator's curvature term);
    None for the ReLU, whose second derivative is zero almost everywhere."""
    if spec.activation == "tanh":
        return -2 * h * (1 - h * h)
    if spec.activation == "softplus":
        e = torch.exp(-spec.beta * h)  # 1 − σ'
        return spec.beta * (1 - e) * e
    return None


def with_ones(XT: torch.Tensor) -> torch.Tensor:
    """[Xᵀ; 1] (d + 1, P): the shared inputs with the bias row, so a layer is one GEMM. Made
    once per input tensor and kept on it (the engine's inputs never change; at MNIST's 784 × 4,000
    the copy was 8 % of a step)."""
    if torch.compiler.is_compiling():  # a traced graph keeps no state on its inputs (inductor fuses the cat)
        return torch.cat([XT, torch.ones(1, XT.shape[1], dtype=XT.dtype, device=XT.device)])
    aug = getattr(XT, "_with_ones", None)
    if aug is None:
        aug = torch.cat([XT, torch.ones(1, XT.shape[1], dtype=XT.dtype, device=XT.device)])
        XT._with_ones = aug  # type: ignore[attr-defined]
    return aug


def _layer(hT, W, b):
    """zᵀ = Wᵀ hᵀ + b, feature-major; hT may be the shared Xᵀ (d, P)."""
    R, i, o = W.shape
    if hT.dim() == 2:  # all replicas in one GEMM [Wᵀ | b] (R·out, d+1) @ [Xᵀ; 1] (d+1, P)
        Wb = torch.cat([W.transpose(1, 2), b.unsqueeze(2)], dim=2).reshape(R * o, i + 1)
        return torch.mm(Wb, with_ones(hT)).view(R, o, -1)
    return torch.baddbmm(b.unsqueeze(2), W.transpose(1, 2), hT)


def _dW(hT, dzT):
    """∂/∂W = h dz per replica, from feature-major hᵀ (in, P) and dzᵀ (out, P)."""
    return torch.matmul(hT, dzT.transpose(-1, -2))


def _flatten(parts, R):
    return torch.cat([p.reshape(R, -1) for p in parts], dim=1)


def forward_hidden(spec: MLPSpec, theta: torch.Tensor, XT: torch.Tensor):
    """Layer inputs [Xᵀ, h1ᵀ, …] and logits (R, P, C) of every replica."""
    act_ = {"relu": torch.relu_, "tanh": torch.tanh_}.get(spec.activation, spec.act)
    layers = spec.unflatten(theta)
    h, h_in = XT, []
    for li, (W, b) in enumerate(layers):
        h_in.append(h)
        z = _layer(h, W, b)
        h = act_(z) if li < len(layers) - 1 else z  # in place where it can: z is a fresh buffer
    return h_in, h.transpose(1, 2).contiguous()


def gradient(spec: MLPSpec, theta: torch.Tensor, XT: torch.Tensor, head: Head, for_hvp: bool = False):
    """(∇_θ ΣF (R, n), F (R,), logits (R, P, C), cache) for the loss `head` (logits → F (R,)).

    for_hvp keeps the loss's second derivative at these logits in the cache, for `hvp`.
    """
    layers = spec.unflatten(theta)
    h_in, f = forward_hidden(spec, theta, XT)
    F, df = head.value_and_grad(f)
    R = theta.shape[0]
    dzT = df.transpose(1, 2)
    parts: list[torch.Tensor] = []
    dzs: list[torch.Tensor | None] = [None] * len(layers)
    dhs: list[torch.Tensor | None] = [None] * len(layers)
    for li in range(len(layers) - 1, -1, -1):
        W, _ = layers[li]
        dzs[li] = dzT
        parts.append(dzT.sum(dim=2))
        parts.append(_dW(h_in[li], dzT))
        if li > 0:
            dhT = torch.bmm(W, dzT)
            dhs[li - 1] = dhT
            dzT = act_prime(spec, dhT, h_in[li])
    g = _flatten(parts[::-1], R)
    return g, F, f, Cache(theta, h_in, dzs, dhs, f, head.hessian(f) if for_hvp else None)


def hvp(spec: MLPSpec, cache: Cache, V: torch.Tensor) -> torch.Tensor:
    """H V (R, n): each replica's Hessian of F at cache.theta applied to its row of V."""
    layers = spec.unflatten(cache.theta)
    vlayers = spec.unflatten(V)
    nl = len(layers)
    Rz_hidden: list[torch.Tensor] = []
    Rh_in: list[torch.Tensor | None] = [None]  # R{z} of hidden layers, R{input} of each layer
    for li, ((W, _), (VW, Vb)) in enumerate(zip(layers, vlayers)):
        Rz = _layer(cache.h_in[li], VW, Vb)
        rin = Rh_in[li]
        if rin is not None:
            Rz = Rz + torch.bmm(W.transpose(1, 2), rin)
        if li < nl - 1:
            Rz_hidden.append(Rz)
            Rh_in.append(act_prime(spec, Rz, cache.h_in[li + 1]))
    Rf = Rz.transpose(1, 2).contiguous()
    if cache.rows is not None:  # the loss curvature is held for every replica: pad the others with zeros
        Rf = torch.zeros_like(cache.logits).index_copy_(0, cache.rows, Rf)
    Rdf = _hess(cache)(Rf)
    if cache.rows is not None:
        Rdf = Rdf[cache.rows]
    RdzT = Rdf.transpose(1, 2)
    parts = []
    for li in range(nl - 1, -1, -1):
        W, _ = layers[li]
        VW, _ = vlayers[li]
        dzT = cache.dz[li]
        RdW = _dW(cache.h_in[li], RdzT)
        rin = Rh_in[li]
        if rin is not None:  # li > 0
            RdW = RdW + _dW(rin, dzT)
        parts.append(RdzT.sum(dim=2))
        parts.append(RdW)
        if li > 0:
            RdhT = torch.bmm(W, RdzT) + torch.bmm(VW, dzT)
            h = cache.h_in[li]
            RdzT = act_prime(spec, RdhT, h)
            if spec.activation == "tanh":  # σ'' term: σ''(z) = −2h(1 − h²)
                RdzT = RdzT - 2 * h * (1 - h * h) * cache.dh[li - 1] * Rz_hidden[li - 1]
            elif (s2 := act_second(spec, h)) is not None:
                RdzT = RdzT + s2 * cache.dh[li - 1] * Rz_hidden[li - 1]
    return _flatten(parts[::-1], V.shape[0])


def _act_prime_b(spec: MLPSpec, g, h):
    """g · σ'(z) for a block g (R, o, b, P), with the layer output h (R, o, P) shared by the block."""
    h = h.unsqueeze(2)
    if spec.activation == "relu":
        return g * (h > 0)
    if spec.activation == "softplus":
        return g * -torch.expm1(-spec.beta * h)
    return g * (1 - h * h)


def hvp_block(spec: MLPSpec, cache: Cache, V: torch.Tensor) -> torch.Tensor:
    """H V for a block V (R, b, n): the same R-operator as `hvp`, with the b vectors of a
    replica in one pass, so every matrix product is b times wider (and there are b times
    fewer kernel launches). Block activations are laid out (R, features, b, P)."""
    R, b, n = V.shape
    layers = spec.unflatten(cache.theta)
    vl = [(VW.reshape(R, b, *VW.shape[1:]), Vb.reshape(R, b, -1)) for VW, Vb in spec.unflatten(V.reshape(R * b, n))]
    nl = len(layers)
    Rz_hidden: list[torch.Tensor] = []
    Rh_in: list[torch.Tensor | None] = [None]
    for li, ((W, _), (VW, Vb)) in enumerate(zip(layers, vl)):
        i, o = W.shape[1], W.shape[2]
        hT = cache.h_in[li]
        if hT.dim() == 2:  # shared inputs: one GEMM for all replicas and vectors, bias included
            Wb = torch.cat([VW.permute(0, 3, 1, 2), Vb.permute(0, 2, 1).unsqueeze(-1)], dim=3).reshape(R * o * b, i + 1)
            Rz = torch.mm(Wb, with_ones(hT)).view(R, o, b, -1)
        else:
            Rz = torch.bmm(VW.permute(0, 3, 1, 2).reshape(R, o * b, i), hT).view(R, o, b, -1)
            Rz = Rz + Vb.permute(0, 2, 1).unsqueeze(-1)
        rin = Rh_in[li]
        if rin is not None:
            P = Rz.shape[-1]
            Rz = Rz + torch.bmm(W.transpose(1, 2), rin.reshape(R, i, b * P)).view(R, o, b, P)
        if li < nl - 1:
            Rz_hidden.append(Rz)
            Rh_in.append(_act_prime_b(spec, Rz, cache.h_in[li + 1]))
    Rf = Rz.permute(2, 0, 3, 1)  # (b, R, P, C)
    if cache.rows is not None:
        Rf = torch.zeros((b,) + tuple(cache.logits.shape), dtype=Rf.dtype, device=Rf.device).index_copy_(
            1, cache.rows, Rf
        )
    Rdf = _hess(cache)(Rf)
    if cache.rows is not None:
        Rdf = Rdf[:, cache.rows]
    RdzT = Rdf.permute(1, 3, 0, 2)  # (R, C, b, P)
    parts = []
    for li in range(nl - 1, -1, -1):
        W, _ = layers[li]
        VW, _ = vl[li]
        i, o = W.shape[1], W.shape[2]
        P = RdzT.shape[-1]
        dzT = cache.dz[li]
        hT = cache.h_in[li]
        Rd = RdzT.reshape(R, o * b, P) if RdzT.is_contiguous() else RdzT.contiguous().view(R, o * b, P)
        if hT.dim() == 2:
            RdW = torch.mm(hT, Rd.reshape(R * o * b, P).t()).view(i, R, o, b).permute(1, 3, 0, 2)
        else:
            RdW = torch.bmm(hT, Rd.transpose(1, 2)).view(R, i, o, b).permute(0, 3, 1, 2)
        rin = Rh_in[li]
        if rin is not None:  # li > 0
            RdW = RdW + torch.bmm(rin.reshape(R, i * b, P), dzT.transpose(1, 2)).view(R, i, b, o).permute(0, 2, 1, 3)
        parts.append(RdzT.sum(dim=3).permute(0, 2, 1))  # (R, b, o)
        parts.append(RdW.reshape(R, b, i * o))
        if li > 0:
            RdhT = torch.bmm(W, Rd.view(R, o, b * P)).view(R, i, b, P)
            RdhT = RdhT + torch.bmm(VW.reshape(R, b * i, o), dzT).view(R, b, i, P).permute(0, 2, 1, 3)
            h = cache.h_in[li]
            RdzT = _act_prime_b(spec, RdhT, h)
            if spec.activation == "tanh":
                hh = h.unsqueeze(2)
                RdzT = RdzT - 2 * hh * (1 - hh * hh) * cache.dh[li - 1].unsqueeze(2) * Rz_hidden[li - 1]
            elif (s2 := act_second(spec, h)) is not None:
                RdzT = RdzT + (s2 * cache.dh[li - 1]).unsqueeze(2) * Rz_hidden[li - 1]
    return torch.cat(parts[::-1], dim=2)
