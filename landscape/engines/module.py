"""A training engine for any `torch.nn.Module`.

R replicas of one architecture (one module per seed, from a factory) are stacked with
`torch.func.stack_module_state` and evaluated with `functional_call` under `vmap`; the
gradient is `torch.func.grad` of the summed loss, Hessian-vector products are
forward-over-reverse (`jvp` of `grad`), and the spectra come from the same batched block
Lanczos (`eigen.topk_eigs`). Parameters live as flat vectors θ (R, n), in the order of
`named_parameters`, so the store, replay and the solver see what they see for the MLP.

It shares `engine.ReplicaEngine` with the fast MLP engine (data, Γ, accuracy, replay,
spectra) and adds the network's passes (step, loss_at, hvp_block); its oracle is that
engine on the same MLP (tests/landscape/engines/test_module.py).
Models with buffers (BatchNorm running statistics) are refused: full-batch gradient descent
on a function of θ alone is what the paper studies, and a buffer would make F depend on history.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence

import torch
from torch.func import functional_call, grad, jvp, stack_module_state, vmap

from landscape import LandscapeError
from landscape.curvature.eigen import BlockOp
from landscape.engines import fused, graph
from landscape.engines.base import ReplicaEngine, StepMetrics, accuracy_of
from landscape.problem import losses
from landscape.problem.data import Dataset


class ModuleEngine(ReplicaEngine):
    """R replicas of the module `make(seed)` (one per seed) in lockstep."""

    def __init__(
        self,
        make: Callable[[int], torch.nn.Module],
        seeds: Sequence[int],
        data: Dataset,
        loss: str,
        eta,
        amplitude,
        period,
        static_from=None,
        gamma_shape: str = "triangle",
        dtype=torch.float64,
        device="cpu",
        optimizer: str = "gd",
        hyper=None,
        chunk: int = 0,
    ):
        super().__init__(
            data, loss, eta, amplitude, period, static_from, gamma_shape, dtype, device, optimizer, hyper, chunk
        )
        self.make = make
        models = self._models(seeds)
        if any(True for _ in models[0].buffers()):
            raise LandscapeError(
                "models with buffers (e.g. BatchNorm running statistics) are not supported: "
                "use a buffer-free normalisation (LayerNorm, GroupNorm) or none"
            )
        self.base = copy.deepcopy(models[0]).to("meta")
        params, _ = stack_module_state(models)
        self.names = [name for name, _ in models[0].named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in models[0].named_parameters()]
        self.sizes = [int(p.numel()) for _, p in models[0].named_parameters()]
        self.num_params = sum(self.sizes)
        self.theta0 = self._flat(params, len(models))

    # --- parameters -----------------------------------------------------------------
    def _models(self, seeds) -> list[torch.nn.Module]:
        out = []
        for s in seeds:
            m = self.make(int(s))
            if not isinstance(m, torch.nn.Module):
                raise LandscapeError(f"the model factory returned {type(m).__name__}, not a torch.nn.Module")
            out.append(m.to(dtype=self.dtype, device=self.device))
        return out

    def _flat(self, params: dict, R: int) -> torch.Tensor:
        return torch.cat([params[n].detach().reshape(R, -1) for n in self.names], dim=1)

    def init(self, seeds) -> torch.Tensor:
        """θ (R, n): the factory's modules for these seeds, flattened in `named_parameters` order."""
        params, _ = stack_module_state(self._models(seeds))
        return self._flat(params, len(seeds))

    def param_map(self) -> list:
        return [[n, list(s)] for n, s in zip(self.names, self.shapes)]

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """{name: (R, *shape)} views of the flat θ (R, n)."""
        out, off = {}, 0
        for name, shape, size in zip(self.names, self.shapes, self.sizes):
            out[name] = theta[:, off : off + size].reshape(theta.shape[0], *shape)
            off += size
        return out

    def logits(self, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """(R, P, C) logits of every replica on the shared inputs X (P, …)."""
        one = lambda p, x: functional_call(self.base, p, (x,))
        f = vmap(one, in_dims=(0, None))(self.unflatten(theta), X)
        if f.dim() != 3 or f.shape[-1] != self.C:
            raise LandscapeError(
                f"the model returns shape {tuple(f.shape[1:])} for {X.shape[0]} inputs; "
                f"it must return (inputs, {self.C}) logits"
            )
        return f

    def logits_fn(self, part: slice = slice(None)):
        X = self.X[part]
        return lambda theta: self.logits(theta, X)

    # --- the loss -------------------------------------------------------------------
    def _total(self, theta: torch.Tensor, G: torch.Tensor, part: slice = slice(None)):
        """ΣF over the replicas on the training examples `part` (F the mean over them), and (F, f)."""
        f = self.logits(theta, self.X[part])
        F = losses.loss(self.loss_name, f, self.y[part], self.Y[part], G)
        return F.sum(), (F.detach(), f.detach())

    # --- one step -------------------------------------------------------------------
    def _grad(self, theta: torch.Tensor, G: torch.Tensor):
        """(∇ΣF, (F, f)): one backward pass, or the weighted sum of one per chunk (`parts`), each
        chunk's graph freed before the next is built."""
        if not self.chunked:
            return grad(self._total, has_aux=True)(theta, G)
        g, F = torch.zeros_like(theta), theta.new_zeros(theta.shape[0])
        fs = []
        for part, w in self.parts():
            gc, (Fc, f) = grad(self._total, has_aux=True)(theta, G, part)
            g, F = g + w * gc, F + w * Fc
            fs.append(f)
        return g, (F, torch.cat(fs, dim=1))

    def step(
        self, theta: torch.Tensor, t: int, G: torch.Tensor | None = None, evaluate: bool = True
    ) -> tuple[torch.Tensor, StepMetrics]:
        """θ_{t+1} = θ_t − η ∇F_t(θ_t), and the metrics at θ_t (val_acc NaN unless `evaluate`)."""
        G = self.gamma(t) if G is None else G
        g, (F, f) = self._grad(theta, G)
        static = losses.loss(self.static_name, f, self.y, self.Y, G)
        acc = accuracy_of(f, self.y).to(self.dtype)
        new = self._update(theta, g, t)
        val = self.accuracy(theta, val=True) if evaluate else torch.full_like(F, float("nan"))
        return new, StepMetrics(F, static, acc, val, G)

    def _gradient(self, theta: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        return self._grad(theta, G)[0]

    def _logits(self, theta: torch.Tensor, val: bool) -> torch.Tensor:
        X = self.Xv if val else self.X
        if not self.chunked:
            return self.logits(theta, X)
        return torch.cat([self.logits(theta, X[p]) for p, _ in self.parts(val)], dim=1)

    # --- many parameter vectors at once (loss landscapes) ----------------------------
    def _evaluation_kernel(self):
        """graph_forward.cpp built for this network (`engines.graph`), when its forward is a
        chain the tables express, the machine has a C++ compiler and the kernel's values at the
        initial θ match this engine's own forward (F and the static loss to 1e-10, both
        accuracies exactly); else None, and views go through `vmap`. `graph_refusal` says why not."""
        if not hasattr(self, "_graph_kernel"):
            self._graph_kernel, self._graph_why = None, self._graph_kernel_or_why()
            if isinstance(self._graph_why, graph.GraphKernel):
                self._graph_kernel, self._graph_why = self._graph_why, None
        return self._graph_kernel

    @property
    def graph_refusal(self) -> str | None:
        """Why views of this network cannot go through tap tables (None: they do)."""
        self._evaluation_kernel()
        return self._graph_why

    def _graph_kernel_or_why(self):
        if self.device.type != "cpu" or self.dtype not in (torch.float32, torch.float64):
            return "the fast view path runs float32 and float64 on the CPU"
        if fused.compiler() is None:
            return "no C++ compiler"
        offsets = dict(zip(self.names, [0, *itertools.accumulate(self.sizes)]))
        prog = graph.program(self.base, tuple(self.X.shape[1:]), self.C, offsets)
        if isinstance(prog, str):
            return prog
        val = (self.Xv, self.yv) if self.has_val else (None, None)
        try:
            kernel = graph.GraphKernel(prog, self.X, self.y, self.C, self.loss_name, *val)
        except LandscapeError as exc:
            return str(exc)
        theta = self.theta0[:4]
        G = self.gamma(0)[: theta.shape[0]]
        try:
            mine, ours = kernel.evaluate(theta, G), super()._evaluate_batch(theta, G)
        except ValueError:  # tables reading past this θ
            return "the tables' forward differs from the module's (a layer read otherwise than it runs)"
        # float32 sums in another order differ by ~1e-7 and may flip a near-tie's class
        rtol, points = (1e-10, 0.5) if self.dtype == torch.float64 else (1e-4, 2.5)
        sizes = [self.X.shape[0], self.Xv.shape[0] if self.has_val else 1]
        for k, (a, b) in enumerate(zip(mine, ours)):
            if k < 2:
                ok = torch.allclose(a, b, rtol=rtol, atol=0, equal_nan=True)
            else:  # accuracies: how many points differ
                ok = bool(
                    ((a - b).nan_to_num().abs() * sizes[k - 2] <= points).all() and (a.isnan() == b.isnan()).all()
                )
            if not ok:
                return "the tables' forward differs from the module's (a layer read otherwise than it runs)"
        ours_s, mine_s = _seconds_per_point(self, kernel)
        if mine_s > ours_s:  # wide dense layers: the module's GEMMs beat a loop over taps
            return f"the tap tables are slower here ({mine_s * 1e3:.2g} ms a point against {ours_s * 1e3:.2g} ms)"
        return kernel

    def _evaluate_batch(self, th: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The base class's batch, through the C kernel where there is one (the same values to rounding)."""
        k = self._evaluation_kernel()
        return super()._evaluate_batch(th, G) if k is None else k.evaluate(th, G)

    # --- the batched passes, tried once ----------------------------------------------
    def probe(self, label: str = "--model") -> None:
        """One step and one Hessian-vector product of every replica on the whole training set,
        before anything is recorded: a forward that draws random numbers, branches on a
        tensor's value or otherwise fails under `torch.func.vmap`/`grad` is one line here,
        naming what the batched engine needs, instead of a traceback in the middle of a run."""
        theta = self.theta0
        try:
            self.step(theta, 0, evaluate=self.has_val)
            self.set_optimizer_state(None, 0)  # the trial step leaves no state behind
            V = torch.ones(theta.shape[0], 1, theta.shape[1], dtype=theta.dtype, device=theta.device)
            self.hvp_block(theta, 0)(V, torch.arange(theta.shape[0], device=theta.device))
        except LandscapeError:
            raise
        except Exception as exc:
            raise LandscapeError(f"{label}: {_batched_failure(exc)}") from None

    # --- curvature ------------------------------------------------------------------
    def hvp_block(self, theta: torch.Tensor, t: int, G: torch.Tensor | None = None) -> BlockOp:
        """Forward-over-reverse, vmapped over the b columns."""
        G_all, theta = self.gamma(t) if G is None else G, theta.detach()

        def op(V: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            th, G = theta[rows], G_all[rows]
            out = torch.zeros_like(V)
            for part, w in self.parts():  # one chunk's graph at a time (the whole batch without --chunk)
                g = lambda x, part=part: grad(self._total, has_aux=True)(x, G, part)[0]
                # the block's columns under vmap: one batched pass instead of a jvp per column
                # (far faster on a small CNN; the same numbers to rounding)
                Hv = vmap(lambda v, g=g: jvp(g, (th,), (v,))[1], in_dims=1, out_dims=1)(V)
                out = Hv if w == 1.0 else out + w * Hv  # the whole batch: its product as it is
            return out

        return op


def _seconds_per_point(engine: ModuleEngine, kernel) -> tuple[float, float]:
    """Seconds a grid point costs through the module's batched forward (a batch of 16, as views
    run it) and through the tap tables, the faster of two tries each: the engine takes the
    tables only where they are faster (they are for small convolutions, not for wide dense
    layers, whose GEMMs run near the arithmetic's limit)."""
    import time

    rows = engine.theta0[:1].repeat(16, 1)
    G = engine.gamma(0)[:1].expand(16, -1)
    best = {}
    for name, fn in (
        ("module", lambda: ReplicaEngine._evaluate_batch(engine, rows, G)),
        ("tables", lambda: kernel.evaluate(rows, G)),
    ):
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        best[name] = min(times) / 16
    return best["module"], best["tables"]


def _batched_failure(exc: Exception) -> str:
    """What a forward did that the batched engine cannot run, in the user's terms."""
    msg = (str(exc).splitlines() or [""])[0]
    if "random operation" in msg or "randomness" in msg:
        return (
            "forward draws random numbers (e.g. nn.Dropout): the replicas are evaluated under "
            "torch.func.vmap as deterministic functions of θ (full-batch gradient descent); remove the "
            "random operation, or return the module in eval mode from the factory"
        )
    if "data-dependent control flow" in msg:
        return (
            "forward branches on a tensor's value (an if or while on a tensor): under torch.func.vmap, "
            "which runs the replicas together, control flow cannot depend on data; use torch.where"
        )
    if ".item()" in msg:
        return "forward reads a tensor's value (.item()), which torch.func.vmap cannot batch; keep it a tensor"
    return (
        f"the model fails in the batched engine (torch.func.vmap over replicas, grad and a "
        f"Hessian-vector product): {type(exc).__name__}: {msg}"
    )
