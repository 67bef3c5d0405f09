"""What every engine shares: R replicas of full-batch gradient descent in lockstep.

Replicas share data, width and loss; each has its own seed (initial network),
η, amplitude A and period T. The loss of the batch is the sum of the replicas'
losses, whose gradient is each replica's gradient in its own row, so one
backward pass trains all of them, and one Hessian-vector product of the sum
applies every replica's Hessian to its own row.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import torch

from landscape import LandscapeError
from landscape.curvature.eigen import BlockOp
from landscape.curvature.ggn import ggn_block
from landscape.curvature.healthy import DIVERGED_BOUND, healthy  # noqa: F401 (the engines' names for them)
from landscape.dynamics.iterates import Tracker
from landscape.problem import losses, optimizers
from landscape.problem.data import Dataset
from landscape.problem.schedule import gamma

EVALUATED = ("loss", "loss_static", "train_acc", "val_acc")  # what `evaluate_at` returns per point
EVAL_NUMBERS = 2**21  # θ entries of one batch of grid points through a C forward kernel (16 MB)


def accuracy_of(f: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(R,) the fraction of points whose largest logit (R, P, C) is their class; NaN for a
    replica with a non-finite logit (a diverged or stopped replica has no accuracy, where
    argmax would pick class 0 of its NaN logits)."""
    acc = (f.argmax(-1) == y).to(f.dtype).mean(dim=1)
    return torch.where(torch.isfinite(f).all(dim=2).all(dim=1), acc, torch.nan)


@dataclass(frozen=True)
class StepMetrics:
    """What one step records per replica, measured at θ_t before the update: (R,) each, or
    (S, R) for S consecutive steps (`ReplicaEngine.steps`)."""

    loss: torch.Tensor  # (R,) dynamical F_t(θ_t)
    loss_static: torch.Tensor  # (R,) the static counterpart (ce or mse)
    train_acc: torch.Tensor  # (R,)
    val_acc: torch.Tensor  # (R,) NaN without validation data
    gamma: torch.Tensor  # (R, C)


class ReplicaEngine(abc.ABC):
    """What every engine shares: the data and the per-replica hyper-parameters on the device,
    Γ, accuracy and replay. A subclass supplies the network, and must
    implement (abstract here): `step(θ, t, Γ, evaluate)` (one update and its metrics),
    `_gradient(θ, Γ)` (∇F per replica), `_logits(θ, val)`, `logits_fn(part)` (the training logits
    as a function of θ, for torch.func), `hvp_block(θ, t, Γ)` (the operator the
    curvature quantities, `landscape.curvature.quantities`, are computed over) and
    `param_map()`; and set `num_params`."""

    def __init__(
        self,
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
        hyper: optimizers.Hyper | None = None,
        chunk: int = 0,
    ):
        losses.check(loss)
        optimizers.check(optimizer)
        self.loss_name, self.gamma_shape = loss, gamma_shape
        self.static_name = losses.STATIC[loss]
        self.dtype, self.device = dtype, torch.device(device)
        t = lambda a, dt=dtype: torch.as_tensor(a, dtype=dt, device=self.device)
        self.X, self.y = t(data.X), t(data.y, torch.long)
        self.Y = torch.nn.functional.one_hot(self.y, data.num_classes).to(dtype)
        self.has_val = data.X_val is not None
        if self.has_val:
            self.Xv, self.yv = t(data.X_val), t(data.y_val, torch.long)
        self.C = data.num_classes
        self.eta = t(eta).reshape(-1)
        self.amplitude = t(amplitude).reshape(-1)
        self.period = t(period, torch.long).reshape(-1)
        self.static_from = None if static_from is None else t(static_from, torch.long).reshape(-1)
        self.R = self.eta.shape[0]
        self.optimizer = optimizer
        self.hyper = (hyper or optimizers.Hyper(self.eta)).to(dtype, self.device)
        self._opt_state: dict[str, torch.Tensor] | None = None  # the optimizer's buffers (R, n) each
        self._opt_t = 0  # the step they belong to: updates done so far
        if chunk < 0:
            raise LandscapeError(f"chunk must be >= 0 (0: the whole batch), got {chunk}")
        self.chunk = int(chunk)

    def parts(self, val: bool = False) -> list[tuple[slice, float]]:
        """The full batch (training or validation examples) as consecutive chunks of at most
        `chunk` examples, each with its weight n_c/P: every loss is a mean over examples, so
        F = Σ_c (n_c/P) F_c, and so are its gradient and Hessian. Summing over chunks holds one
        chunk's activations at a time (memory set by the chunk, not the data) and equals the
        whole batch to rounding. One part, the whole batch, without a chunk or when it is larger."""
        P = (self.Xv if val else self.X).shape[0]
        if not self.chunk or self.chunk >= P:
            return [(slice(None), 1.0)]
        return [(slice(a, min(a + self.chunk, P)), (min(a + self.chunk, P) - a) / P) for a in range(0, P, self.chunk)]

    @property
    def chunked(self) -> bool:
        return len(self.parts()) > 1

    num_params: int  # n, the length of θ: set by the subclass, which knows the network

    @abc.abstractmethod
    def _gradient(self, theta: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @abc.abstractmethod
    def _logits(self, theta: torch.Tensor, val: bool) -> torch.Tensor:
        raise NotImplementedError

    def ggn_block(self, theta: torch.Tensor, t: int, G: torch.Tensor | None = None) -> BlockOp:
        """The generalised Gauss–Newton operator Jᵀ H_out J at θ and step t (`curvature.ggn`)."""
        G = self.gamma(t) if G is None else G
        ops = []
        for part, w in self.parts():
            y, Y = self.y[part], self.Y[part]

            def head(f, rows, y=y, Y=Y):
                return losses.loss(self.loss_name, f, y, Y, G[rows]).sum()

            ops.append((ggn_block(self.logits_fn(part), head, theta), w))
        if len(ops) == 1:
            return ops[0][0]

        def summed(V: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            out = torch.zeros_like(V)
            for op, w in ops:
                out = out + w * op(V, rows)
            return out

        return summed

    @abc.abstractmethod
    def logits_fn(self, part: slice = slice(None)):
        """θ (R, n) ↦ the logits (R, P_part, C) of the training examples `part`, as a function
        torch.func can differentiate (the Gauss–Newton operator's network half)."""
        raise NotImplementedError

    @abc.abstractmethod
    def hvp_block(self, theta: torch.Tensor, t: int, G: torch.Tensor | None = None) -> BlockOp:
        """The block map (V (Ra, b, n), rows) ↦ H V of the replicas `rows` at θ and step t (Γ G (R, C)
        when the caller has it, else Γ(t)): what the eigensolvers want."""
        raise NotImplementedError

    @abc.abstractmethod
    def param_map(self) -> list:
        """[[name, shape], …] in the order of θ's entries: stored with the recording."""
        raise NotImplementedError

    # --- the update rule and its state ---------------------------------------------------
    def _update(self, theta: torch.Tensor, g: torch.Tensor, t: int) -> torch.Tensor:
        """θ_{t+1} from θ_t and its gradient g by the optimizer (gradient descent: θ − η g, the
        arithmetic every step strategy shares), advancing the optimizer's state to step t + 1."""
        if self.optimizer == "gd":
            return torch.addcmul(theta, self.eta.unsqueeze(1), g, value=-1.0)
        new, state = optimizers.update(self.optimizer, theta, g, self._state_at(t, theta), self.hyper, t + 1)
        self._moved_to(state, t + 1)
        return new

    def _state_at(self, t: int, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The optimizer's state at step t: zero at a run's start, else what was loaded or
        stepped to t; anything else would replay a different trajectory, so it is refused."""
        if self._opt_state is None and t == 0:
            self._opt_state = optimizers.init_state(self.optimizer, theta)
        if self._opt_state is None or self._opt_t != t:
            at = "none" if self._opt_state is None else f"step {self._opt_t}"
            raise LandscapeError(
                f"the {self.optimizer} optimizer's state is needed at step {t} (it holds {at}): "
                "load the saved state of that step first (set_optimizer_state)"
            )
        return self._opt_state

    def _moved_to(self, state: dict[str, torch.Tensor], t: int) -> None:
        """The optimizer's buffers after its updates up to step t (what a step strategy that
        advances them itself, compiled or fused, hands back)."""
        self._opt_state, self._opt_t = state, t

    def optimizer_state(self) -> tuple[dict[str, torch.Tensor], int]:
        """The optimizer's buffers ({name: (R, n)}; empty for gd) and the step they belong to."""
        if self.optimizer == "gd":
            return {}, self._opt_t
        if self._opt_state is None:
            zeros = torch.zeros(self.R, self.num_params, dtype=self.dtype, device=self.device)
            return optimizers.init_state(self.optimizer, zeros), 0
        return self._opt_state, self._opt_t

    def set_optimizer_state(self, state: dict | None, t: int) -> None:
        """Put the optimizer's buffers of step t in place ({name: (R, n)} tensors or arrays; None:
        the zero state, t must be 0): what a resume or a replay from a saved step does first."""
        if self.optimizer == "gd":  # no state: θ alone continues the run
            self._opt_t = int(t)
            return
        if state is None:
            if t != 0:
                raise LandscapeError(f"the {self.optimizer} optimizer has no state for step {t}")
            self._opt_state, self._opt_t = None, 0
            return
        want = set(optimizers.STATE[self.optimizer])
        if set(state) != want:
            raise LandscapeError(f"the {self.optimizer} optimizer's state holds {sorted(want)}, got {sorted(state)}")
        self._opt_state = {k: torch.as_tensor(v).to(dtype=self.dtype, device=self.device) for k, v in state.items()}
        self._opt_t = int(t)

    def preconditioner(self) -> torch.Tensor | None:
        """P (R, n) of an adaptive optimizer at the state's step (None: P = I); NaN before its
        first update, where the squared-gradient average is still empty."""
        state, t = self.optimizer_state()
        if self.optimizer not in optimizers.ADAPTIVE:
            return None
        if t == 0:
            return torch.full((self.R, self.num_params), float("nan"), dtype=self.dtype, device=self.device)
        return optimizers.preconditioner(self.optimizer, state, self.hyper, t)

    # --- the loss -------------------------------------------------------------------
    def gamma(self, t) -> torch.Tensor:
        """Γ (R, C) at step t, or (S, R, C) for a sequence of steps."""
        return gamma(t, self.amplitude, self.period, self.C, self.gamma_shape, self.static_from)

    @torch.no_grad()
    def accuracy(self, theta: torch.Tensor, val: bool = False) -> torch.Tensor:
        if val and not self.has_val:
            return torch.full((theta.shape[0],), float("nan"), dtype=self.dtype, device=self.device)
        y = self.yv if val else self.y
        return accuracy_of(self._logits(theta, val), y).to(self.dtype)

    @torch.no_grad()
    def evaluate_at(self, thetas: torch.Tensor, t: int, replica: int = 0, batch: int = 256) -> dict[str, torch.Tensor]:
        """Replica `replica`'s F_t, its static loss and the training and validation accuracy at
        many parameter vectors (B, n), each (B,): a loss-landscape grid evaluated as batches of
        replicas (`batch` at a time), one `_evaluate_batch` per batch."""
        G = self.gamma(t)[replica : replica + 1]
        cols: dict[str, list] = {name: [] for name in EVALUATED}
        for i in range(0, thetas.shape[0], batch):
            th = thetas[i : i + batch]
            for name, v in zip(EVALUATED, self._evaluate_batch(th, G.expand(th.shape[0], -1))):
                cols[name].append(v)
        return {k: torch.cat(v) for k, v in cols.items()}

    def evaluation_batch(self, points: int) -> int:
        """Grid points per `evaluate_at` batch for a view of `points` points: with a C forward
        kernel (`_evaluation_kernel`) every point whose θ fits in EVAL_NUMBERS numbers in one call
        (it holds no activations: the batch costs only its θ rows); else 16 (a torch forward
        gains nothing from larger batches and holds their activations)."""
        if self._evaluation_kernel() is None:
            return max(1, min(points, 16))
        return max(1, min(points, max(16, EVAL_NUMBERS // self.num_params)))

    def _evaluation_kernel(self):
        """A C kernel that evaluates many θ at once, where this network and machine have one."""
        return None

    def _evaluate_batch(self, th: torch.Tensor, G: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """F, static loss, training and validation accuracy (each (B,)) at the rows of th: one
        forward pass of the batch (an engine with a faster pass overrides this)."""
        f = self._logits(th, False)
        return (
            losses.loss(self.loss_name, f, self.y, self.Y, G),
            losses.loss(self.static_name, f, self.y, self.Y, G),
            accuracy_of(f, self.y).to(self.dtype),
            self.accuracy(th, val=True),
        )

    def loss_at(self, thetas: torch.Tensor, t: int, replica: int = 0, batch: int = 256) -> torch.Tensor:
        """F_t of replica `replica`'s schedule at many parameter vectors (B, n) → (B,)."""
        return self.evaluate_at(thetas, t, replica, batch)["loss"]

    @abc.abstractmethod
    def step(self, theta: torch.Tensor, t: int, G: torch.Tensor | None = None, evaluate: bool = True):
        raise NotImplementedError

    @torch.no_grad()
    def steps(self, theta: torch.Tensor, t: int, G: torch.Tensor, evaluate: bool = True, track: Tracker | None = None):
        """S = len(G) steps from step t (G: Γ (S, R, C) of steps t … t+S−1): θ_{t+S} and the
        metrics (S, R) of every step; validation accuracy at θ_t only (the recorder cuts its
        segments at the `--eval-every` steps), NaN at the others. Here a loop of `step`; each
        new θ goes to `track` (the iterate signals), if given."""
        ms = []
        for i in range(G.shape[0]):
            theta, m = self.step(theta, t + i, G[i], evaluate and i == 0)
            if track is not None:
                track.push(theta)
            ms.append(m)

        def per_step(name: str) -> torch.Tensor:
            if len(ms) == 1:  # the default --eval-every 1, the recorder's hot path: a view, not a copy
                return getattr(ms[0], name)[None]
            return torch.stack([getattr(m, name) for m in ms])

        return theta, StepMetrics(
            per_step("loss"), per_step("loss_static"), per_step("train_acc"), per_step("val_acc"), G
        )

    @torch.no_grad()
    def advance(self, theta: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
        """θ_{t1} from θ_{t0} by replaying the deterministic updates (no metrics).

        The same arithmetic as `step`, so replay reproduces a recording bit for bit.
        """
        for t in range(t0, t1):
            theta = self._update(theta, self._gradient(theta, self.gamma(t)), t)
        return theta

    @torch.no_grad()
    def advance_tracked(self, theta: torch.Tensor, t0: int, t1: int, track: Tracker) -> torch.Tensor:
        """`advance` from t0 to t1, handing every θ to `track`: the iterate signals of an older
        store (recorded before them) by replay, with the recording's own arithmetic."""
        for t in range(t0, t1):
            theta = self.advance(theta, t, t + 1)
            track.push(theta)
        return theta
