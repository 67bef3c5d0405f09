"""The built-in MLP engine: hand-written passes (derivatives.py) for the network of
`problem.mlp`, with its step run by one strategy (`steps.py`: eager, compile or fused)."""

from __future__ import annotations

import torch

from landscape import LandscapeError
from landscape.curvature.eigen import BlockOp
from landscape.dynamics.iterates import Tracker
from landscape.engines import derivatives
from landscape.engines.base import ReplicaEngine, StepMetrics, accuracy_of
from landscape.engines.steps import STRATEGIES
from landscape.problem import losses, optimizers
from landscape.problem.data import Dataset
from landscape.problem.mlp import MLPSpec, chunk_refusal


class MLPEngine(ReplicaEngine):
    """R replicas of the built-in MLP; `step` names how its step runs (`steps.STRATEGIES`)."""

    def __init__(
        self,
        spec: MLPSpec,
        data: Dataset,
        loss: str,
        eta,
        amplitude,
        period,
        static_from=None,
        gamma_shape: str = "triangle",
        dtype=torch.float64,
        device="cpu",
        step: str = "eager",
        optimizer: str = "gd",
        hyper=None,
        chunk: int = 0,
    ):
        super().__init__(
            data, loss, eta, amplitude, period, static_from, gamma_shape, dtype, device, optimizer, hyper, chunk
        )
        if step not in STRATEGIES:
            raise LandscapeError(f"unknown step '{step}'; choose one of {', '.join(STRATEGIES)}")
        if self.chunked and step != "eager":
            raise LandscapeError(chunk_refusal(step))
        self.spec = spec
        self.num_params = spec.num_params
        self.XT = self.X.t().contiguous()  # feature-major inputs for derivatives.py
        if self.has_val:
            self.XvT = self.Xv.t().contiguous()
        # the chunks of the full batch (one, the whole batch, without --chunk): inputs feature-major
        self.blocks = [(self.XT[:, p].contiguous(), self.y[p], self.Y[p], w) for p, w in self.parts()]
        if self.has_val:
            self.val_blocks = [self.XvT[:, p].contiguous() for p, _ in self.parts(val=True)]
        self.strategy = STRATEGIES[step](self)

    @property
    def step_name(self) -> str:
        return self.strategy.name

    def init(self, seeds) -> torch.Tensor:
        """θ (R, n) of the reference initialisation for these seeds."""
        return self.spec.init(seeds, self.dtype, self.device)

    def param_map(self) -> list:
        """Layer i's W (in, out) and b (out,), as θ holds them: fc1.weight, fc1.bias, …"""
        out = []
        for i, (a, b) in enumerate(self.spec.layer_shapes, 1):
            out += [[f"fc{i}.weight", [a, b]], [f"fc{i}.bias", [b]]]
        return out

    def _loss_fn(self, G, name=None) -> losses.Head:
        return losses.Head(name or self.loss_name, self.y, self.Y, G)

    def _gradient(self, theta: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        if self.chunked:
            return self._chunked_parts(theta, G)[0]
        return derivatives.gradient(self.spec, theta, self.XT, self._loss_fn(G))[0]

    def logits_fn(self, part: slice = slice(None)):
        X = self.X[part]
        return lambda theta: self.spec.forward(theta, X)

    def _logits(self, theta: torch.Tensor, val: bool) -> torch.Tensor:
        if not self.chunked:
            return derivatives.forward_hidden(self.spec, theta, self.XvT if val else self.XT)[1]
        XTs = self.val_blocks if val else [b[0] for b in self.blocks]
        return torch.cat([derivatives.forward_hidden(self.spec, theta, XT)[1] for XT in XTs], dim=1)

    def _chunked_parts(self, theta: torch.Tensor, G: torch.Tensor):
        """The gradient, F, the static loss and the training accuracy as weighted sums over the
        chunks of the batch (`parts`): one chunk's activations alive at a time."""
        R = theta.shape[0]
        g = torch.zeros_like(theta)
        F, static, acc = (theta.new_zeros(R) for _ in range(3))
        for XT, y, Y, w in self.blocks:
            gc, Fc, f, _ = derivatives.gradient(self.spec, theta, XT, losses.Head(self.loss_name, y, Y, G))
            g, F = g + w * gc, F + w * Fc
            static = static + w * losses.loss(self.static_name, f, y, Y, G)
            acc = acc + w * accuracy_of(f, y).to(self.dtype)
        return g, F, static, acc

    # --- many parameter vectors at once (loss landscapes) ----------------------------
    def _evaluation_kernel(self):
        """The fused C++ kernel for evaluating many θ (activations kept in cache), when this
        network and machine allow one: the fused strategy's own, or one built for evaluation
        (the one-hidden-layer MLP on a CPU with a C++ compiler); else None."""
        if self.strategy.name == "fused":
            return self.strategy.kernel
        if not hasattr(self, "_eval_kernel"):
            self._eval_kernel = None
            if self.spec.depth == 1 and self.device.type == "cpu" and self.dtype in (torch.float32, torch.float64):
                from landscape.engines import fused

                if self.spec.activation in ("relu", "tanh") and fused.compiler() is not None:
                    val = (self.Xv, self.yv) if self.has_val else (None, None)
                    try:
                        self._eval_kernel = fused.FusedKernel(
                            self.X, self.y, self.C, self.spec.width, self.loss_name, self.spec.activation, *val
                        )
                    except LandscapeError:  # a compiler that builds nothing: the torch passes
                        self._eval_kernel = None
        return self._eval_kernel

    def _evaluate_batch(self, th: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The base class's batch, through the fused kernel where there is one (the same values
        to rounding; each point's independent of its batch)."""
        k = self._evaluation_kernel()
        if k is None:
            return super()._evaluate_batch(th, G)
        B = th.shape[0]
        ms = k.forward(th, G)  # forward only: no backward, no update
        val = k.accuracy(th, val=True) if self.has_val else torch.full((B,), float("nan"), dtype=self.dtype)
        return ms[0], ms[1], ms[2], val

    # --- the step, as pure functions of tensors (what the strategies run or compile) ----
    def step_core(self, theta: torch.Tensor, G: torch.Tensor, evaluate: bool):
        """θ_{t+1} (gradient descent), F, the static loss, training and (if evaluate)
        validation accuracy at θ_t."""
        g, F, static, acc, val = self._step_parts(theta, G, evaluate)
        new = torch.addcmul(theta, self.eta.unsqueeze(1), g, value=-1.0)
        return new, F, static, acc, val

    def step_core_opt(self, theta: torch.Tensor, G: torch.Tensor, evaluate: bool, state: tuple, k: torch.Tensor):
        """The step with another optimizer than gradient descent, as a pure function of tensors
        (what `--step compile` compiles): θ_{t+1}, the state buffers after the update (in the
        order of `optimizers.STATE`), F, the static loss, training and validation accuracy;
        `k` the update's count (a tensor: Adam's bias correction without a recompile per step)."""
        g, F, static, acc, val = self._step_parts(theta, G, evaluate)
        names = optimizers.STATE[self.optimizer]
        new, st = optimizers.update(self.optimizer, theta, g, dict(zip(names, state)), self.hyper, k)
        return new, tuple(st[n] for n in names), F, static, acc, val

    def _step_parts(self, theta: torch.Tensor, G: torch.Tensor, evaluate: bool):
        """The gradient at θ_t and the metrics there (validation accuracy None unless evaluate)."""
        if self.chunked:
            g, F, static, acc = self._chunked_parts(theta, G)
        else:
            g, F, f, _ = derivatives.gradient(self.spec, theta, self.XT, self._loss_fn(G))
            static = losses.loss(self.static_name, f, self.y, self.Y, G)
            acc = accuracy_of(f, self.y).to(self.dtype)
        val = self.accuracy(theta, val=True) if evaluate else None
        return g, F, static, acc, val

    def validation(self, theta: torch.Tensor) -> torch.Tensor:
        return self.accuracy(theta, val=True)

    # --- stepping and replay: the strategy's -----------------------------------------
    @torch.no_grad()
    def step(
        self, theta: torch.Tensor, t: int, G: torch.Tensor | None = None, evaluate: bool = True
    ) -> tuple[torch.Tensor, StepMetrics]:
        """θ_{t+1} = θ_t − η ∇F_t(θ_t), and the metrics at θ_t (G: Γ(t) if precomputed).

        evaluate=False skips the validation forward pass (val_acc NaN): `--eval-every`. With another
        optimizer than gradient descent its state is advanced to t + 1."""
        G = self.gamma(t) if G is None else G
        if self.optimizer == "gd":
            return self.strategy.step(theta, G, evaluate)
        if self.strategy.name != "eager":  # the optimizer in the C loop, or compiled
            return self.strategy.step(theta, G, evaluate, t)
        g, F, static, acc, val = self._step_parts(theta, G, evaluate and self.has_val)
        if val is None:
            val = torch.full_like(F, float("nan"))
        return self._update(theta, g, t), StepMetrics(F, static, acc, val, G)

    @torch.no_grad()
    def steps(self, theta: torch.Tensor, t: int, G: torch.Tensor, evaluate: bool = True, track: Tracker | None = None):
        """S = len(G) steps from step t: θ_{t+S} and the metrics (S, R) of every step, the
        iterate signals to `track`; validation accuracy at θ_t only (NaN at the others)."""
        return self.strategy.steps(theta, t, G, evaluate, track)

    @torch.no_grad()
    def advance(self, theta: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
        """θ_{t1} from θ_{t0}, through the strategy that recorded (its rounding, bit for bit)."""
        return self.strategy.advance(theta, t0, t1)

    @torch.no_grad()
    def advance_tracked(self, theta: torch.Tensor, t0: int, t1: int, track: Tracker) -> torch.Tensor:
        return self.strategy.advance_tracked(theta, t0, t1, track)

    # --- curvature ------------------------------------------------------------------
    def hvp_cache(self, theta: torch.Tensor, G: torch.Tensor) -> derivatives.Cache:
        with torch.no_grad():
            return derivatives.gradient(self.spec, theta.detach(), self.XT, self._loss_fn(G), for_hvp=True)[3]

    def hvp(self, theta: torch.Tensor, t: int):
        """The map V (R, n) ↦ H_t(θ) V, row r by replica r's Hessian (hand-written R-operator)."""
        if self.chunked:
            op, rows = self.hvp_block(theta, t), torch.arange(theta.shape[0], device=theta.device)
            return lambda V: op(V.unsqueeze(1), rows)[:, 0]
        cache = self.hvp_cache(theta, self.gamma(t))
        return lambda V: derivatives.hvp(self.spec, cache, V)

    def hvp_block(self, theta: torch.Tensor, t: int, G: torch.Tensor | None = None) -> BlockOp:
        G = self.gamma(t) if G is None else G
        if not self.chunked:
            return self.strategy.hvp_block(theta, G)
        theta = theta.detach()

        def op(V: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            """Σ_c w_c H_c V: each chunk's cache made, used and dropped in turn (bounded memory
            for one more forward and backward pass per product)."""
            out = torch.zeros_like(V)
            for XT, y, Y, w in self.blocks:
                head = losses.Head(self.loss_name, y, Y, G[rows])
                with torch.no_grad():
                    cache = derivatives.gradient(self.spec, theta[rows], XT, head, for_hvp=True)[3]
                out = out + w * derivatives.hvp_block(self.spec, cache, V)
            return out

        return op
