"""How the MLP engine's step runs, chosen once per engine: `eager` (torch operations, one
step a call), `compile` (torch.compile; on a CPU a segment of steps as one scan) or `fused`
(one hand-fused C++ loop on the CPU, `fused.py`). The engine delegates its stepping, replay
and Hessian-vector products to one of these; each strategy keeps its own arithmetic, so a
recording is replayed by the strategy that recorded it (bit for bit).

Speeds of the three: docs/performance.md.
"""

from __future__ import annotations

from typing import Any

import torch

from landscape import LandscapeError
from landscape.curvature.eigen import BlockOp
from landscape.dynamics.iterates import Tracker, step_signals
from landscape.engines import derivatives
from landscape.engines.base import ReplicaEngine, StepMetrics
from landscape.problem.mlp import fused_refusal

try:  # several steps in one compiled call, as lax.scan does (a prototype op of torch)
    from torch._higher_order_ops.scan import scan as _scan
except ImportError:  # pragma: no cover - depends on the torch version
    _scan = None  # type: ignore[assignment]

STEPS = ("eager", "compile", "fused")
REPLAY_CHUNK = 1000  # steps of Γ built at a time when a segmented strategy replays


class EagerStep:
    """torch operations, one step a call; replay by the gradient alone (the same arithmetic
    for θ as the recorded step, without its metrics)."""

    name = "eager"

    def __init__(self, eng: Any):
        self.eng = eng
        self.core = eng.step_core

    def step(
        self, theta: torch.Tensor, G: torch.Tensor, evaluate: bool, t: int | None = None
    ) -> tuple[torch.Tensor, StepMetrics]:
        new, F, static, acc, val = self.core(theta, G, evaluate and self.eng.has_val)
        if val is None:
            val = torch.full_like(F, float("nan"))
        return new, StepMetrics(F, static, acc, val, G)

    def steps(self, theta, t, G, evaluate, track):
        return ReplicaEngine.steps(self.eng, theta, t, G, evaluate, track)

    def advance(self, theta, t0, t1):
        return ReplicaEngine.advance(self.eng, theta, t0, t1)

    def advance_tracked(self, theta, t0, t1, track):
        return ReplicaEngine.advance_tracked(self.eng, theta, t0, t1, track)

    def hvp_block(self, theta: torch.Tensor, G: torch.Tensor) -> BlockOp:
        """The hand-written R-operator; its cache is cut down to the active replicas once per
        change of the active set."""
        eng = self.eng
        full = eng.hvp_cache(theta, G)
        cut = full  # the cache of the current active set; rows only shrink, so its size names it

        def op(V, rows):
            nonlocal cut
            c = cut
            if c.theta.shape[0] != rows.numel():
                c = cut = derivatives.subset(full, rows)
            if rows.numel() < 4:  # launch-bound: one pass for the block
                return derivatives.hvp_block(eng.spec, c, V)
            # memory-bound: column by column (the block's strided copies cost more at large R)
            return torch.stack([derivatives.hvp(eng.spec, c, V[:, j]) for j in range(V.shape[1])], dim=1)

        return op


class _Segmented(EagerStep):
    """A strategy that runs a segment of steps per call: replay goes through the same calls."""

    def advance(self, theta, t0, t1):
        return self.advance_tracked(theta, t0, t1, None)

    def advance_tracked(self, theta, t0, t1, track):
        for a in range(t0, t1, REPLAY_CHUNK):
            b = min(a + REPLAY_CHUNK, t1)
            theta = self.steps(theta, a, self.eng.gamma(list(range(a, b))), False, track)[0]
        return theta


class CompiledStep(_Segmented):
    """torch.compile (inductor) of the step: one graph per (evaluate, shapes), as the step has
    no autograd call. On a CPU the steps of a segment run as one scan (torch's scan, one graph
    for every segment length ≥ 2), bit-identical to the compiled single step whatever the
    segmentation, so a replay may cut its segments differently. Trajectories agree with the
    eager step to rounding, not bit for bit."""

    name = "compile"

    def __init__(self, eng: Any):
        super().__init__(eng)
        dyn = torch._dynamo.config  # the limit is per function, not per engine: many engines in a sweep
        limit = "recompile_limit" if hasattr(dyn, "recompile_limit") else "cache_size_limit"  # torch < 2.6
        setattr(dyn, limit, max(getattr(dyn, limit), 64))
        self.core = torch.compile(eng.step_core, fullgraph=True, dynamic=False)
        self.segment = None
        self.gd = eng.optimizer == "gd"
        if not self.gd:  # another optimizer: its state carried through the compiled step
            self.core_opt = torch.compile(eng.step_core_opt, fullgraph=True, dynamic=False)
        if _scan is not None and eng.device.type == "cpu":
            body = self._scan_core if self.gd else self._scan_core_opt
            self.segment = torch.compile(body, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
            self.val_acc = torch.compile(eng.validation, fullgraph=True, dynamic=False)

    def step(self, theta, G, evaluate, t: int | None = None):
        if self.gd:
            return super().step(theta, G, evaluate)
        eng = self.eng
        if t is None:
            raise ValueError("compiled step: the step index is needed with an optimizer's state")
        state = eng._state_at(t, theta)
        k = torch.tensor(float(t + 1), dtype=eng.dtype, device=eng.device)
        new, st, F, static, acc, val = self.core_opt(theta, G, evaluate and eng.has_val, tuple(state.values()), k)
        eng._moved_to(dict(zip(state, st)), t + 1)
        if val is None:
            val = torch.full_like(F, float("nan"))
        return new, StepMetrics(F, static, acc, val, G)

    def _scan_core_opt(self, theta, d, p, U, G, state, k):
        """`_scan_core` with an optimizer's state and its update count k carried as well."""
        core = self.eng.step_core_opt

        def body(carry, g):
            th, dd, pp, st, kk = carry
            new, st, F, static, acc, _ = core(th, g, False, st, kk)
            sig, dd, pp = step_signals(th, new, dd, pp, U)
            return (new, dd, pp, st, kk + 1), torch.cat([torch.stack([F, static, acc]), sig])

        (theta, d, p, state, _), out = _scan(body, (theta, d, p, state, k), G)
        return theta, d, p, state, out

    def _scan_core(self, theta, d, p, U, G):
        """S steps (G: (S, R, C)) as one scan of the step, carrying the iterate signal's state
        (d, p): θ_S, d, p and per step the metrics (S, 3, R) and signals (S, 3 + K, R)."""
        core = self.eng.step_core

        def body(carry, g):
            th, dd, pp = carry
            new, F, static, acc, _ = core(th, g, False)
            sig, dd, pp = step_signals(th, new, dd, pp, U)
            return (new, dd, pp), torch.cat([torch.stack([F, static, acc]), sig])

        (theta, d, p), out = _scan(body, (theta, d, p), G)
        return theta, d, p, out

    def steps(self, theta, t, G, evaluate, track):
        if self.segment is None:  # a GPU, or a torch without scan: the compiled step, one a call
            return super().steps(theta, t, G, evaluate, track)
        eng, S = self.eng, G.shape[0]
        val = torch.full((S, theta.shape[0]), float("nan"), dtype=eng.dtype, device=eng.device)
        if evaluate:
            val[0] = self.val_acc(theta)
        G = G.contiguous()
        if S > 1:  # one graph for all lengths ≥ 2 (a length of 1 is its own)
            torch._dynamo.mark_dynamic(G, 0)
        # a replay runs the same graph as the recording (inductor may round θ differently in another)
        tr = track if track is not None else Tracker(theta, t)
        # the carry keeps its inputs' layout: d and p as contiguous copies of the tracker's state
        args = (theta.contiguous(), tr.d.contiguous(), tr.p.contiguous(), tr.U, G)
        if self.gd:
            theta, d, p, out = self.segment(*args)
        else:
            state = eng._state_at(t, theta)
            k = torch.tensor(float(t + 1), dtype=eng.dtype, device=eng.device)
            theta, d, p, st, out = self.segment(*args, tuple(v.contiguous() for v in state.values()), k)
            eng._moved_to(dict(zip(state, st)), t + S)
        K = tr.U.shape[0]
        tr.extend(out[:, 3:6].transpose(1, 2), out[:, 6 : 6 + K].transpose(1, 2), theta, d, p)
        return theta, StepMetrics(out[:, 0], out[:, 1], out[:, 2], val, G)

    def advance_tracked(self, theta, t0, t1, track):
        if self.segment is None:  # the compiled single step (inductor's rounding differs from eager)
            for t in range(t0, t1):
                theta = self.step(theta, self.eng.gamma(t), False, t)[0]
                if track is not None:
                    track.push(theta)
            return theta
        return super().advance_tracked(theta, t0, t1, track)


class FusedStep(_Segmented):
    """The hand-fused C++ loop (`fused.FusedKernel`): a segment of steps, the iterate signals
    and the Hessian-vector products in one call each, activations kept in cache. The one-hidden-
    layer MLP on a CPU only."""

    name = "fused"

    def __init__(self, eng: Any):
        super().__init__(eng)
        from landscape.engines.fused import FusedKernel

        if why := fused_refusal(eng.spec.depth, eng.device, eng.dtype, eng.spec.activation):
            raise LandscapeError(why)
        val = (eng.Xv, eng.yv) if eng.has_val else (None, None)
        self.kernel = FusedKernel(eng.X, eng.y, eng.C, eng.spec.width, eng.loss_name, eng.spec.activation, *val)

    def step(self, theta, G, evaluate, t: int | None = None):
        new, m = self.steps(theta, t, G[None], evaluate, None)
        return new, StepMetrics(m.loss[0], m.loss_static[0], m.train_acc[0], m.val_acc[0], G)

    def steps(self, theta, t, G, evaluate, track):
        eng = self.eng
        val = torch.full((G.shape[0], theta.shape[0]), float("nan"), dtype=eng.dtype, device=eng.device)
        if evaluate and eng.has_val:
            val[0] = self.kernel.accuracy(theta, val=True)
        if eng.optimizer == "gd":
            theta, ms = self.kernel(theta, G, eng.eta, track)
            return theta, StepMetrics(ms[:, 0], ms[:, 1], ms[:, 2], val, G)
        # another optimizer: its state at t (the engine's), advanced in the loop, handed back
        from landscape.engines.fused import CODES, Optimizer

        bufs = {k: v.to(eng.dtype).contiguous().clone() for k, v in eng._state_at(t, theta).items()}
        first, *second = bufs.values()
        code = CODES[eng.optimizer] + (eng.optimizer == "adam" and not eng.hyper.bias_correction)
        opt = Optimizer(code, self._hyper(), first, second[0] if second else None, t)
        theta, ms = self.kernel(theta, G, eng.eta, track, opt)
        eng._moved_to(bufs, t + G.shape[0])
        return theta, StepMetrics(ms[:, 0], ms[:, 1], ms[:, 2], val, G)

    def _hyper(self) -> torch.Tensor:
        """The optimizer's hyper-parameters per replica as the C loop reads them (R, 3)."""
        if not hasattr(self, "_hyp"):
            h, R = self.eng.hyper, self.eng.R
            zero = torch.zeros(R, dtype=self.eng.dtype)
            cols = {
                "momentum": (h.beta, zero, zero),
                "nesterov": (h.beta, zero, zero),
                "rmsprop": (h.alpha, zero, h.eps),
                "adam": (h.beta1, h.beta2, h.eps),
            }[self.eng.optimizer]
            self._hyp = torch.stack([c.to(self.eng.dtype) for c in cols], dim=1).contiguous()
        return self._hyp

    def hvp_block(self, theta, G):
        """The fused R-operator: no cache, one pass over the points."""
        k = self.kernel
        return lambda V, rows: k.hvp(theta[rows], G[rows], V)


STRATEGIES = {s.name: s for s in (EagerStep, CompiledStep, FusedStep)}
