"""A user's network as tap tables for graph_forward.cpp: the loss-landscape views' forward pass
of a module engine, many θ in one C++ call.

A network that is a chain of Linear and Conv2d layers, elementwise ReLU or tanh, and the
flattens and reshapes between them is, per sample, a chain of linear maps of its features:
output j = b_j + Σ θ[w]·in[i] over the taps (i, w) of j. `program` reads the chain from the
module (`torch.fx`, shapes from one trial pass) and writes every layer's taps; anything else
(a skip connection, a normalisation, a custom operation) gives a reason instead, and the
engine evaluates through `vmap` as before. `GraphKernel` runs the tables; the module engine
uses it only after it matched the engine's own forward at the initial θ and ran faster
(`ModuleEngine._evaluation_kernel`).

    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)).double()
    >>> p = program(net, (4,), 2)
    >>> [int(n) for n in p.layers[:, 2]], [int(d) for d in p.layers[:, 5]]  # outputs, dense inputs
    ([3, 2], [4, 3])
    >>> program(torch.nn.Sequential(torch.nn.LayerNorm(4), torch.nn.Linear(4, 2)), (4,), 2)
    'LayerNorm is not a layer the fast view path reads'
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import math
import operator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as Fn
from torch import fx, nn

from landscape.engines import fused
from landscape.problem.losses import LOSSES

SOURCE = Path(__file__).with_name("graph_forward.cpp")
ACTIVATIONS = {"relu": 1, "tanh": 2}
_ACT_CALLS = {torch.relu: "relu", Fn.relu: "relu", torch.tanh: "tanh", Fn.tanh: "tanh"}
_ACT_MODULES = {nn.ReLU: "relu", nn.Tanh: "tanh"}
_RESHAPES = {"reshape", "view", "flatten", "contiguous"}


@dataclass(frozen=True)
class Program:
    """The tables graph_forward.cpp reads: `layers` (nlayer, 8) int32 rows (in_off, out_off,
    n_out, activations (base-3 digits, lowest first: 1 relu, 2 tanh), first output among all
    layers', and `Layer`'s mode, w and channels), `rowptr` (outputs + 1,) where each output's
    (or position's) taps begin, `bias` (outputs,) θ index of each output's bias or −1, `taps`
    (T, 2); `d` input features, `nfeat` features of a sample in all, `out_off` where the
    logits begin, `num_params` the θ entries the tables read (one past the largest index)."""

    layers: np.ndarray
    rowptr: np.ndarray
    bias: np.ndarray
    taps: np.ndarray
    d: int
    nfeat: int
    out_off: int
    num_params: int


class _Tables:
    """The program as it is written, layer by layer."""

    def __init__(self, d: int):
        self.layers: list[list[int]] = []
        self.rows: list[int] = [0]
        self.bias: list[np.ndarray] = []
        self.taps: list[np.ndarray] = []
        self.nfeat = d
        self.reads = 0  # one past the largest θ index any layer reads

    def add(self, in_off: int, layer: Layer, bias: np.ndarray) -> int:
        """The layer, its outputs' biases θ[bias[j]] (−1: none); returns its output offset."""
        out_off = self.nfeat
        self.layers.append([in_off, out_off, layer.n_out, 0, len(self.rows) - 1, layer.mode, layer.w, layer.channels])
        self.bias.append(bias)
        rows = layer.rows + [np.zeros((0, 2), dtype=np.int64)] * (layer.n_out - len(layer.rows))
        for r in rows:
            self.taps.append(r)
            self.rows.append(self.rows[-1] + r.shape[0])
        self.nfeat += layer.n_out
        self.reads = max(self.reads, layer.reads, int(bias.max(initial=-1)) + 1)
        return out_off


@dataclass
class Layer:
    """One linear map as graph_forward.cpp runs it. mode 0: output j reads its taps rows[j]
    ((k, 2): input feature, θ index); mode d > 0: dense on d inputs from θ[w] (W (n_out, d),
    row-major), no taps; mode −K: `channels` channels share each position's taps rows[p]
    (input feature, weight offset within a channel), channel o's weights from θ[w + o·K]
    (a convolution: its outputs (o, p) in that order)."""

    n_out: int
    rows: list[np.ndarray]
    mode: int = 0
    w: int = 0
    channels: int = 1

    @property
    def reads(self) -> int:
        """One past the largest θ index this map reads."""
        if self.mode > 0:
            return self.w + self.mode * self.n_out
        if self.mode < 0:
            return self.w - self.mode * self.channels
        return max((int(r[:, 1].max()) + 1 for r in self.rows if len(r)), default=0)


def _linear(mod: nn.Linear, shape: tuple, w: int) -> Layer | str:
    """A Linear as a dense layer (W is (out, in), row-major, from θ[w])."""
    if len(shape) != 1 or shape[0] != mod.in_features:
        return f"a Linear on per-sample shape {shape} (the fast path reads Linear on flat features)"
    return Layer(mod.out_features, [], mode=mod.in_features, w=w)


def _conv2d(mod: nn.Conv2d, shape: tuple, out_shape: tuple, w: int) -> Layer | str:
    """A Conv2d: its channels sharing each position's taps (groups = 1), or every output's own
    taps (grouped: a group's channels read other inputs)."""
    if len(shape) != 3 or mod.padding_mode != "zeros" or isinstance(mod.padding, str) and mod.padding != "valid":
        return "a Conv2d other than zero-padded with numeric padding on (C, H, W) samples"
    C, H, W = shape
    O, OH, OW = out_shape
    kh, kw = mod.kernel_size
    (sh, sw), (dh, dw) = mod.stride, mod.dilation
    ph, pw = (0, 0) if isinstance(mod.padding, str) else mod.padding
    cg, og = C // mod.groups, O // mod.groups
    o, y, x, c, a, b = np.meshgrid(
        np.arange(O), np.arange(OH), np.arange(OW), np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij"
    )  # one axis per output coordinate and per tap: (O, OH, OW, cg, kh, kw), in the outputs' order
    iy, ix = y * sh - ph + a * dh, x * sw - pw + b * dw
    c_in = (o // og) * cg + c
    inside = ((iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)).reshape(O * OH * OW, -1)  # zero padding: no tap
    feat = ((c_in * H + iy) * W + ix).reshape(inside.shape)[inside]
    widx = (w + ((o * cg + c) * kh + a) * kw + b).reshape(inside.shape)[inside]
    taps = np.stack([feat, widx], axis=1)
    if mod.groups == 1:  # channel 0's taps at every position, weights relative to its first
        P, K = OH * OW, C * kh * kw
        first = inside[:P]
        rel = np.stack([feat[: first.sum()], widx[: first.sum()] - w], axis=1)
        return Layer(O * P, np.split(rel, np.cumsum(first.sum(axis=1))[:-1]), mode=-K, w=w, channels=O)
    return Layer(O * OH * OW, np.split(taps, np.cumsum(inside.sum(axis=1))[:-1]))


def _shape_query(node: fx.Node, queries: set) -> bool:
    """Whether the node asks a tensor's size (`x.size(0)`, `x.shape[0]`, `x.dim()`) or indexes
    such an answer: its value is a number fixed by the shapes, which the tables already know."""
    if node.op == "call_method" and node.target in ("size", "dim"):
        return True
    if node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",):
        return True
    return node.op == "call_function" and node.target is operator.getitem and node.args[0] in queries


def program(
    module: nn.Module, sample_shape: tuple, classes: int, offsets: dict[str, int] | None = None
) -> Program | str:
    """The tap tables of `module` for samples of `sample_shape`, or why it has none (a string).
    offsets: θ index of each parameter (default: `named_parameters` order, flat)."""
    if offsets is None:
        offsets, off = {}, 0
        for name, p in module.named_parameters():
            offsets[name], off = off, off + p.numel()
    try:
        gm = fx.symbolic_trace(module)
        from torch.fx.passes.shape_prop import ShapeProp

        p0 = next(module.parameters(), None)
        dtype, device = (p0.dtype, p0.device) if p0 is not None else (torch.float64, torch.device("cpu"))
        with contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints the traceback it raises
            ShapeProp(gm).propagate(torch.zeros((2, *sample_shape), dtype=dtype, device=device))  # "meta" too
    except Exception as exc:  # a forward fx cannot trace (control flow on values, …): the vmap path
        return f"torch.fx cannot trace the forward ({(str(exc).splitlines() or [''])[0]})"
    d = math.prod(sample_shape)
    tables = _Tables(d)
    cur, shape, off, last = None, tuple(sample_shape), 0, None  # the chain's value, its shape, features, layer
    mods = dict(gm.named_modules())
    queries: set[fx.Node] = set()
    for node in gm.graph.nodes:
        meta = node.meta.get("tensor_meta")
        if node.op == "placeholder":
            if cur is not None:
                return "a forward with more than one input"
            cur = node
            continue
        if node.op == "output":
            res = node.args[0]
            if res is not cur or meta is None or tuple(meta.shape) != (2, classes):
                return "a forward whose output is not the chain's (samples, classes) logits"
            break
        operands = [*node.args, *node.kwargs.values()]
        if _shape_query(node, queries):  # x.size(0), x.shape[0]: numbers for a reshape, not values
            queries.add(node)
            continue
        args = [a for a in operands if isinstance(a, fx.Node) and a not in queries]
        if args != [cur] or meta is None or not hasattr(meta, "shape"):
            return f"{node.name}: not a chain of one tensor (a skip connection or a second operand)"
        out_shape = tuple(meta.shape)
        if out_shape[:1] != (2,):
            return f"{node.name} mixes the samples of a batch"
        target = mods.get(node.target) if node.op == "call_module" else None
        act = (
            _ACT_MODULES.get(type(target))
            if target is not None
            else _ACT_CALLS.get(node.target)
            if node.op == "call_function"
            else node.target
            if node.op == "call_method" and node.target in ACTIVATIONS
            else None
        )
        if act is not None:  # one more base-3 digit of the layer's activations
            if last is None or tables.layers[last][1] != off:
                return f"{node.name}: an activation that does not follow a Linear or Conv2d"
            done = tables.layers[last][3]
            if done >= 3**6:
                return f"{node.name}: more than six activations in a row"
            tables.layers[last][3] = done + ACTIVATIONS[act] * 3 ** len(np.base_repr(done, 3).lstrip("0"))
        elif isinstance(target, nn.Linear | nn.Conv2d):
            w = offsets.get(f"{node.target}.weight")
            if w is None:
                return f"{node.target}: its weight is not one of θ's parameters"
            layer = (
                _linear(target, shape, w) if isinstance(target, nn.Linear) else _conv2d(target, shape, out_shape[1:], w)
            )
            if isinstance(layer, str):
                return layer
            b = offsets.get(f"{node.target}.bias") if target.bias is not None else None
            channel = np.arange(layer.n_out) // (layer.n_out // out_shape[1])  # a Conv2d's bias per channel
            off = tables.add(off, layer, np.full(layer.n_out, -1) if b is None else b + channel)
            last = len(tables.layers) - 1
        elif (
            isinstance(target, nn.Flatten | nn.Unflatten | nn.Identity)
            or (node.op == "call_method" and node.target in _RESHAPES)
            or (node.op == "call_function" and node.target in (torch.flatten, torch.reshape))
        ):
            pass  # the same features in C order, another per-sample shape
        else:
            what = type(target).__name__ if target is not None else getattr(node.target, "__name__", str(node.target))
            return f"{what} is not a layer the fast view path reads"
        cur, shape = node, out_shape[1:]
    if not tables.layers:
        return "a network without a Linear or Conv2d layer"
    taps = np.concatenate([np.zeros((0, 2), dtype=np.int64), *tables.taps]).astype(np.int32)
    return Program(
        np.asarray(tables.layers, dtype=np.int32), np.asarray(tables.rows, dtype=np.int32),
        np.concatenate(tables.bias).astype(np.int32), taps, d, tables.nfeat, off, tables.reads,
    )  # fmt: skip


class GraphKernel(fused.Threaded):
    """graph_forward.cpp built for the program, data and loss: F, the static loss and both
    accuracies at many θ rows, each row alone (the same values however the rows are batched)."""

    def __init__(self, prog: Program, X, y, C: int, loss: str, X_val=None, y_val=None):
        self.prog, self.C, self.dtype = prog, C, X.dtype
        self.train = fused._Points(X.reshape(X.shape[0], -1), y)
        self.val = None if X_val is None or y_val is None else fused._Points(X_val.reshape(X_val.shape[0], -1), y_val)
        key = (X.dtype, 1, C, 0, LOSSES.index(loss), fused.vector_math())
        lib = fused.library(key, SOURCE)
        lib.landscape_graph_forward.restype = ctypes.c_int
        lib.landscape_graph_forward.argtypes = (
            [ctypes.c_int] * 6 + [ctypes.c_void_p] * 4 + [ctypes.c_int] * 2 + [ctypes.c_void_p] * 5
            + [ctypes.c_int] * 2 + [ctypes.c_void_p] * 3
        )  # fmt: skip
        self._fn = lib.landscape_graph_forward
        self._tables = [
            torch.from_numpy(np.ascontiguousarray(a)) for a in (prog.layers, prog.rowptr, prog.bias, prog.taps)
        ]

    def evaluate(self, theta: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(F, static loss, training accuracy, validation accuracy), each (R,), at θ (R, n) with
        Γ G (R, C); validation NaN without validation data, all four NaN where θ is not finite."""
        theta, G = theta.to(self.dtype).contiguous(), G.to(self.dtype).contiguous()
        R, n = theta.shape
        if n < self.prog.num_params or G.shape != (R, self.C):  # the C loop would read past θ's rows
            raise ValueError(f"tap tables: θ {tuple(theta.shape)}, Γ {tuple(G.shape)} do not fit this network")
        out = torch.empty((3, R), dtype=self.dtype)
        val = torch.full((R,), float("nan"), dtype=self.dtype)
        layers, rowptr, bias, taps = (fused._ptr(t) for t in self._tables)
        p = self.prog
        v = (
            (self.val.P, self.val.Pp, fused._ptr(self.val.XT), fused._ptr(self.val.y))
            if self.val
            else (0, 0, None, None)
        )
        chunks = self._chunks(R)
        parts = {c: (torch.empty((3, c[1] - c[0]), dtype=self.dtype), val[c[0] : c[1]].clone()) for c in chunks}

        def run(r0: int, r1: int) -> None:
            m, va = parts[(r0, r1)]
            rc = self._fn(r1 - r0, n, len(p.layers), p.nfeat, p.d, p.out_off, layers, rowptr, bias, taps,
                          *self.train.args, fused._ptr(G[r0:r1]), fused._ptr(theta[r0:r1]), fused._ptr(m),
                          *v, fused._ptr(va) if self.val else None)  # fmt: skip
            if rc != 0:
                raise MemoryError("the fast view path: out of memory for a block's activations")
            out[:, r0:r1], val[r0:r1] = m, va

        self._run(run, chunks)
        return out[0], out[1], out[2], val
