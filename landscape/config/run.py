"""The configuration of a recording: every knob, its validation, and the replica grid.

A recording is the product seeds × η × A × T of replicas sharing loss, data and
network; the config is stored whole in the store's attributes, so a store alone
is enough to rebuild its engine (replay, resume, analysis: `landscape.runs.build`).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from landscape import LandscapeError
from landscape.config.knobs import knob
from landscape.problem import benchmarks, losses, optimizers
from landscape.problem.losses import LOSSES
from landscape.problem.mlp import ACTIVATIONS, chunk_refusal, fused_refusal
from landscape.problem.schedule import SHAPES

DTYPES = {"float64": torch.float64, "float32": torch.float32}
UNTIL = ("end", "first-instability")
STEPS = ("eager", "compile", "fused")  # the MLP engine's step strategies (engines/steps.py)
# bounds where the code needs them: seeds feed NumPy's legacy seeding (32 bits); steps and
# periods index int64 arrays and float64 phases (exact to 2**53); torch's thread pool crashes
# far beyond the cores a machine has; a probe costs a Hessian-vector product
MAX_SEED = 2**32 - 1
MAX_STEPS = 10**12
MAX_THREADS = 1024
MAX_PROBES = 100_000
# --density-method auto: the whole spectrum (n HVPs + eigh) up to this many parameters, where it
# costs less than SLQ at the default M and V (bench/bench_density.py, docs/performance.md)
DENSE_SPECTRUM_BELOW = 800
DENSITY_METHODS = ("auto", "dense", "slq")
MAX_LANCZOS = 10_000  # Lanczos steps or eigenpairs: beyond this, take the dense Hessian


class Replica(NamedTuple):
    """One row of the replica table: what differs between the replicas of a batch (the
    optimizer's hyper-parameters too; a row of four, from before the optimizers, takes their
    defaults and trained with gradient descent, which uses none of them)."""

    seed: int
    eta: float
    amplitude: float
    period: int
    beta: float = 0.9
    alpha: float = 0.99
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


HYPER = ("beta", "alpha", "beta1", "beta2", "eps")  # the optimizer's per-replica hyper-parameters
# the knobs (lists, like etas) that give them, and which optimizers use each
HYPER_KNOBS = {"beta": "betas", "alpha": "alphas", "beta1": "beta1s", "beta2": "beta2s", "eps": "epsilons"}
HYPER_USERS = {"beta": ("momentum", "nesterov"), "alpha": ("rmsprop",), "beta1": ("adam",), "beta2": ("adam",),
               "eps": ("rmsprop", "adam")}  # fmt: skip


def _row(values) -> Replica:
    s, e, a, T, *rest = values
    return Replica(int(s), float(e), float(a), int(T), *(float(v) for v in rest))


def _bad(msg: str):
    raise LandscapeError(msg)


@dataclass(frozen=True)
class RunConfig:
    """Every knob of a recording. Command-line options (`landscape record`, `landscape sweep`)
    and TOML keys are derived from these fields; `validate` is the one place that checks them."""

    loss: str = knob("dce", "the loss (d…: dynamical)", choices=LOSSES)
    etas: tuple = knob((1.0,), "learning rate(s) eta", flag="eta", item=float)
    amplitudes: tuple = knob(
        (70.0,), "amplitude(s) A of Γ (A = 1: the static loss)", flag="amplitude", short="A", item=float
    )
    periods: tuple = knob((5000,), "period(s) T of Γ in steps", flag="period", short="T", item=int)
    seeds: tuple = knob((0,), "seeds: a count '5' (0..4), a list '3,7' or a range '0-9'", item=int, parse="seeds")
    width: int = knob(100, "hidden width")
    depth: int = knob(1, "hidden layers")
    activation: str = knob(
        "relu", "the built-in MLP's activation (softplus: log(1 + e^{βz})/β)", choices=tuple(ACTIVATIONS)
    )
    softplus_beta: float = knob(1.0, "the softplus's sharpness β (β → ∞: the ReLU's kink)")
    steps: int = knob(10000, "training steps")
    hessian_every: int = knob(50, "a spectrum every this many steps")
    hessian_pairs: bool = knob(True, "spectra at t and t + 1 (both branches of a period-2 bounce)")
    top_k: int = knob(2, "Hessian eigenpairs per spectrum")
    eig_tol: float = knob(1e-3, "eigensolver relative residual tolerance")
    eig_max_iter: int = knob(100, "eigensolver Krylov dimension limit")
    eig_oversample: int = knob(1, "guard vectors beyond top-k in the solver's block")
    eig_dense_below: int = knob(
        0,
        "spectra from the whole Hessian (n products and one eigh: exact) for networks of at most this many "
        "parameters; faster than the Krylov solver for a few dozen (docs/performance.md); 0: never",
    )
    layer_spectra: bool = knob(False, "also the top eigenvalue of each layer's Hessian block at the spectrum steps")
    trace_samples: int = knob(0, "Hutchinson probes for the Hessian trace at the spectrum steps (0: no trace)")
    density_steps: int = knob(
        0,
        "Lanczos steps M (quadrature nodes per vector) of the Hessian's eigenvalue density (stochastic Lanczos "
        "quadrature) at the spectrum steps (0: no density)",
    )
    density_vectors: int = knob(4, "random vectors V per replica of the density at the spectrum steps")
    density_method: str = knob(
        "auto",
        "how the density, the trace and the bottom eigenvalues are computed: dense (the whole spectrum from n "
        "Hessian-vector products and eigh: exact), slq (stochastic Lanczos quadrature, Hutchinson's trace, block "
        "Lanczos on −H) or auto (dense for small networks, docs/performance.md)",
        choices=DENSITY_METHODS,
    )
    bottom_k: int = knob(0, "smallest Hessian eigenpairs (λ_min first) at the spectrum steps (0: none)")
    grad_norm: bool = knob(False, "also the gradient's norm ‖∇F_t‖ at the spectrum steps")
    ggn_k: int = knob(
        0, "also the top-k eigenvalues of the Gauss–Newton matrix Jᵀ H_out J at the spectrum steps (0: off)"
    )
    precond_k: int = knob(
        0,
        "rmsprop and adam: also the top-k eigenvalues of P⁻¹H (P the optimizer's preconditioner, the sharpness "
        "its edge applies to) at the spectrum steps (0: off)",
    )
    lyapunov: int = knob(
        0,
        "the top-K finite-time Lyapunov exponents of the training map: K tangent vectors of the whole state "
        "(θ and the optimizer's buffers) through every step's tangent map, re-orthonormalised each step (0: off)",
    )
    lyapunov_window: int = knob(
        0, "with --lyapunov: also the exponents over consecutive windows of this many steps (0: none)"
    )
    class_accuracy: bool = knob(
        False, "also each class's training and validation accuracy at every evaluated step (--eval-every)"
    )
    optimizer: str = knob(
        "gd",
        "the update rule, torch.optim's: gd, momentum (heavy ball, SGD momentum=β), nesterov, rmsprop or adam; "
        "its state is saved beside θ (docs/reference/optimizers.md)",
        choices=optimizers.OPTIMIZERS,
    )
    betas: tuple = knob((0.9,), "momentum β of momentum and nesterov (a list: a replica each)", flag="beta",
                        item=float)  # fmt: skip
    alphas: tuple = knob((0.99,), "RMSProp's smoothing constant α of the squared gradient's average (a list)",
                         flag="alpha", item=float)  # fmt: skip
    beta1s: tuple = knob((0.9,), "Adam's β1, the gradient's average (a list)", flag="beta1", item=float)
    beta2s: tuple = knob((0.999,), "Adam's β2, the squared gradient's average (a list)", flag="beta2", item=float)
    epsilons: tuple = knob((1e-8,), "ε added to the root of the squared-gradient average (rmsprop, adam; a list)",
                           flag="eps", item=float)  # fmt: skip
    bias_correction: bool = knob(True, "Adam's bias correction of its averages")
    save_params_every: int = knob(1000, "save θ (and eigenvectors) every this many steps")
    chunk_steps: int = knob(1000, "flush interval in steps (a crash loses at most this many)")
    gamma_shape: str = knob("triangle", "shape of Γ(t)", choices=SHAPES)
    static_last: bool = knob(False, "A = 1 in the last oscillation (accuracy at the static loss)")
    dtype: str = knob("float64", "floating point type", choices=tuple(DTYPES))
    eval_every: int = knob(1, "validation accuracy every this many steps and at the last (NaN between)")
    step: str = knob(
        "eager",
        "how the built-in MLP's step runs: eager (torch), compile (torch.compile/inductor; on a CPU the steps "
        "between two spectra, saves or validation steps as one call) or fused (one hand-fused C++ loop on the "
        "CPU, built on first use with the machine's C++ compiler; for small inputs such as the spiral's, not "
        "image data); compile and fused agree with eager to rounding, not bit for bit, and are fastest with "
        "--eval-every (speeds: docs/performance.md)",
        aliases={"compile": "compile", "fused": "fused"},
        choices=STEPS,
    )
    chunk: int = knob(
        0,
        "examples per chunk of the full batch: the loss, gradient, Hessian- and Gauss–Newton-vector products "
        "and evaluations are summed over chunks of this many examples, so memory is set by the chunk, not the "
        "data; equal to the whole batch to rounding (0: the whole batch at once; the eager step and --model)",
    )
    device: str = knob("cpu", "cpu, cuda or cuda:N")
    threads: int = knob(
        1,
        "CPU threads of the recording process (0: torch's default, all cores); one thread is the fastest "
        "choice when other processes share the cores (measured: docs/performance.md)",
    )
    data: str | None = knob(
        None,
        ".npz/.h5 file with X, y (optionally X_val, y_val), or a benchmark: mnist5k, fashion-mnist[:FOLDER], "
        "mnist1d, cifar10:FOLDER, each with :N examples [default: the spiral]",
    )
    until: str = knob(
        "end",
        "end, or first-instability (each replica stops --until-margin steps after its own first instability, "
        "NaN from there on; the run ends when all have)",
        choices=UNTIL,
    )
    until_margin: int = knob(200, "steps recorded after a replica's first instability before it stops")
    model: str | None = knob(
        None,
        "your network: PKG.MODULE:FACTORY or FILE.py:FACTORY, make(seed, **model-args) -> nn.Module "
        "[default: the built-in MLP of --width/--depth/--activation]",
    )
    model_args: tuple = knob((), "key=value arguments for the model factory", flag="model-arg", item=str)
    n_per_class: int = knob(100, "spiral points per class")
    data_seed: int = knob(0, "seed of the spiral's training points")
    val_seed: int = knob(1, "seed of the spiral's validation points")
    # explicit rows (a sweep's batch); overrides the product seeds × etas × amplitudes × periods
    replica_table: tuple[Replica, ...] = ()
    extra: dict = field(default_factory=dict)  # free-form metadata, stored with the config

    def __post_init__(self):
        rows = tuple(_row(r) for r in self.replica_table)
        object.__setattr__(self, "replica_table", rows)
        bench = benchmarks.parse(self.data) if self.data and self.data.split(":")[0] in benchmarks.NAMES else None
        if bench is not None:  # a named benchmark; its folder (if any) made absolute like a file
            if bench.path and not Path(bench.path).is_absolute():
                n = f":{bench.n}" if bench.n is not None else ""
                object.__setattr__(self, "data", f"{bench.name}:{Path(bench.path).resolve()}{n}")
        elif self.data and not Path(self.data).is_absolute():  # a store must not depend on the cwd
            object.__setattr__(self, "data", str(Path(self.data).resolve()))
        if self.model and ".py:" in self.model and not Path(self.model.split(":")[0]).is_absolute():
            path, name = self.model.rsplit(":", 1)
            object.__setattr__(self, "model", f"{Path(path).resolve()}:{name}")

    # --- validation -------------------------------------------------------------------
    def validate(self) -> RunConfig:
        """Raise LandscapeError with one clear line for the first bad value."""
        self._check_replicas()
        self._check_network()
        self._check_spectra()
        self._check_run()
        return self

    def _check_replicas(self) -> None:
        """The replica grid or table: present, within range, no replica twice."""
        losses.check(self.loss)
        for name, vals in (
            ("eta", self.etas),
            ("amplitude", self.amplitudes),
            ("period", self.periods),
            ("seed", self.seeds),
        ):
            if len(vals) == 0:
                _bad(f"no value given for {name}")
        if self.replica_table:
            cols = list(zip(*self.replica_table))
            u = [tuple(dict.fromkeys(c)) for c in cols]  # each value once: its own checks below
            hyper: dict[str, Any] = {HYPER_KNOBS[h]: u[4 + i] for i, h in enumerate(HYPER)}
            replace(self, replica_table=(), seeds=u[0], etas=u[1], amplitudes=u[2], periods=u[3], **hyper).validate()
            r = next((r for r, c in Counter(self.replicas()).items() if c > 1), None)
            if r is not None:
                _bad(f"replica (seed {r.seed}, eta {r.eta:g}, A {r.amplitude:g}, T {r.period}) given twice")
        if any(not np.isfinite(e) or e <= 0 for e in self.etas):
            _bad(f"learning rate eta must be > 0, got {', '.join(map(str, self.etas))}")
        if any(not np.isfinite(a) or a < 1 for a in self.amplitudes):
            _bad(f"amplitude A must be >= 1 (A = 1 is the static loss), got {', '.join(map(str, self.amplitudes))}")
        if any(int(T) != T or not 2 <= T <= MAX_STEPS for T in self.periods):
            _bad(f"period T must be an integer from 2 to {MAX_STEPS:.0e}, got {', '.join(map(str, self.periods))}")
        if any(int(s) != s or not 0 <= s <= MAX_SEED for s in self.seeds):
            _bad(f"seeds must be integers from 0 to {MAX_SEED} (2**32 − 1)")
        if not self.replica_table:  # a repeated value makes identical replicas
            for name, vals in (
                ("seed", self.seeds),
                ("eta", self.etas),
                ("amplitude", self.amplitudes),
                ("period", self.periods),
                *((h, getattr(self, HYPER_KNOBS[h])) for h in HYPER),
            ):
                dup = sorted(v for v, c in Counter(vals).items() if c > 1)
                if dup:
                    _bad(f"{name} {', '.join(f'{v:g}' for v in dup)} given twice: its replicas would be identical runs")
        if not (0 <= self.data_seed <= MAX_SEED and 0 <= self.val_seed <= MAX_SEED):
            _bad(f"data-seed and val-seed must be integers from 0 to {MAX_SEED} (2**32 − 1)")

    def _check_network(self) -> None:
        """The built-in MLP's shape and the run's length."""
        if self.width < 1:
            _bad(f"width must be >= 1, got {self.width}")
        if self.depth < 1:
            _bad(f"depth must be >= 1, got {self.depth}")
        if self.activation not in ACTIVATIONS:
            _bad(f"unknown activation '{self.activation}'; choose one of {', '.join(ACTIVATIONS)}")
        if not (np.isfinite(self.softplus_beta) and self.softplus_beta > 0):
            _bad(f"softplus-beta must be a positive number, got {self.softplus_beta}")
        if self.softplus_beta != 1.0 and self.activation != "softplus":
            _bad(f"--softplus-beta shapes the softplus; the {self.activation} has no sharpness to set")
        if not 1 <= self.steps <= MAX_STEPS:
            _bad(f"steps must be from 1 to {MAX_STEPS:.0e}, got {self.steps}")

    def _check_spectra(self) -> None:
        """The solvers' settings and where the spectra and saved vectors fall."""
        if self.top_k < 2:
            _bad(f"top-k must be >= 2, got {self.top_k}")
        if not (np.isfinite(self.eig_tol) and 0 < self.eig_tol < 1) or self.eig_max_iter < self.top_k:
            _bad("eig-tol must be between 0 and 1 (exclusive) and eig-max-iter >= top-k")
        if self.eig_oversample < 0:
            _bad(f"eig-oversample must be >= 0, got {self.eig_oversample}")
        if self.trace_samples < 0 or self.trace_samples == 1 or self.trace_samples > MAX_PROBES:
            _bad(
                f"trace-samples must be 0 (off) or from 2 (a standard error needs two) to {MAX_PROBES}, "
                f"got {self.trace_samples}"
            )
        if self.density_steps < 0 or self.density_steps == 1 or self.density_steps > MAX_LANCZOS:
            _bad(f"density-steps must be 0 (off) or from 2 to {MAX_LANCZOS}, got {self.density_steps}")
        if not 1 <= self.density_vectors <= MAX_PROBES:
            _bad(f"density-vectors must be from 1 to {MAX_PROBES}, got {self.density_vectors}")
        if self.density_method not in DENSITY_METHODS:
            _bad(f"density-method must be one of {', '.join(DENSITY_METHODS)}, got '{self.density_method}'")
        if not 0 <= self.ggn_k <= MAX_LANCZOS:
            _bad(f"ggn-k must be from 0 (off) to {MAX_LANCZOS}, got {self.ggn_k}")
        if not 0 <= self.bottom_k <= MAX_LANCZOS:
            _bad(f"bottom-k must be from 0 (off) to {MAX_LANCZOS}, got {self.bottom_k}")
        if not 0 <= self.lyapunov <= MAX_LANCZOS:
            _bad(f"lyapunov must be from 0 (off) to {MAX_LANCZOS} exponents, got {self.lyapunov}")
        if self.lyapunov_window < 0 or (self.lyapunov_window and not self.lyapunov):
            _bad(f"lyapunov-window must be >= 0 and goes with --lyapunov K, got {self.lyapunov_window}")
        if self.hessian_every < 1:
            _bad(f"hessian-every must be >= 1, got {self.hessian_every}")
        if self.save_params_every < 1 or self.save_params_every % self.hessian_every:
            _bad(
                f"save-params-every ({self.save_params_every}) must be a positive multiple of hessian-every "
                f"({self.hessian_every}), "
                "so every saved parameter vector has its eigenvectors"
            )
        if self.chunk_steps < 1 or self.chunk_steps % self.hessian_every:
            _bad(
                f"chunk-steps ({self.chunk_steps}) must be a positive multiple of hessian-every ({self.hessian_every})"
            )

    def _check_run(self) -> None:
        """Γ's shape, the arithmetic and where it runs, when to stop, the step strategy and a model."""
        if self.gamma_shape not in SHAPES:
            _bad(f"unknown gamma shape '{self.gamma_shape}'; choose one of {', '.join(SHAPES)}")
        if self.dtype not in DTYPES:
            _bad(f"dtype must be one of {', '.join(DTYPES)}, got '{self.dtype}'")
        self.check_device()
        if self.until not in UNTIL:
            _bad(f"until must be one of {', '.join(UNTIL)}, got '{self.until}'")
        if self.until_margin < 0:
            _bad("until-margin must be >= 0")
        if self.n_per_class < 2:
            _bad("n-per-class must be >= 2")
        if not 0 <= self.threads <= MAX_THREADS:
            _bad(f"threads must be from 0 (torch's default) to {MAX_THREADS}, got {self.threads}")
        if self.model_args and not self.model:
            _bad("--model-arg goes with --model (the built-in MLP takes --width, --depth, --activation)")
        if not 0 <= self.eig_dense_below <= 4096:
            _bad(f"eig-dense-below must be between 0 and 4096 (R × n² numbers), got {self.eig_dense_below}")
        if self.eval_every < 1:
            _bad(f"eval-every must be >= 1, got {self.eval_every}")
        if self.step not in STEPS:
            _bad(f"unknown step '{self.step}'; choose one of {', '.join(STEPS)}")
        if self.step != "eager" and self.model:
            _bad(f"--step {self.step} applies to the built-in MLP only (a --model runs through torch.func)")
        if self.step == "fused" and (
            why := fused_refusal(self.depth, self.device, DTYPES[self.dtype], self.activation)
        ):
            _bad(why)
        if self.chunk < 0:
            _bad(f"chunk must be >= 0 (0: the whole batch), got {self.chunk}")
        if self.chunk and self.step != "eager":
            _bad(chunk_refusal(self.step))
        self._check_optimizer()
        if self.model:
            mlp = [f"--{k}" for k in ("width", "depth", "activation") if getattr(self, k) != getattr(RunConfig, k)]
            if mlp:
                _bad(
                    f"{'/'.join(mlp)} shape{'s' if len(mlp) == 1 else ''} the built-in MLP; with --model the "
                    "network is yours (size it with --model-arg)"
                )

    def _check_optimizer(self) -> None:
        """The update rule and its hyper-parameters (each a fraction or a small positive ε)."""
        optimizers.check(self.optimizer)
        for h in HYPER:
            vals = getattr(self, HYPER_KNOBS[h])
            if len(vals) == 0:
                _bad(f"no value given for {h}")
            for v in vals:
                ok = v > 0 if h == "eps" else 0 <= v < 1
                if not (np.isfinite(v) and ok):
                    _bad(f"{h} must be {'> 0' if h == 'eps' else 'in [0, 1)'}, got {v}")
            if len(vals) > 1 and self.optimizer not in HYPER_USERS[h]:  # identical replicas otherwise
                _bad(f"several values of {h} with --optimizer {self.optimizer}, which does not use it")
        if not 0 <= self.precond_k <= MAX_LANCZOS:
            _bad(f"precond-k must be from 0 (off) to {MAX_LANCZOS}, got {self.precond_k}")
        if self.precond_k and self.optimizer not in optimizers.ADAPTIVE:
            _bad(f"--precond-k applies to rmsprop and adam (P = I for {self.optimizer}: it is the Hessian's top-k)")

    def optimizer_buffers(self) -> tuple[str, ...]:
        """The state buffers the optimizer keeps beside θ (stored as `opt_<name>`): () for gd."""
        return optimizers.STATE[self.optimizer]

    def optimizer_line(self) -> str:
        """The optimizer, the values its replicas take of each hyper-parameter and its threshold,
        in one line (`landscape info` of a run or a sweep)."""
        reps = self.replicas()
        beta, alpha, beta1, beta2, eps = ([*dict.fromkeys(getattr(r, h) for r in reps)] for h in HYPER)
        return optimizers.describe(self.optimizer, beta, alpha, beta1, beta2, eps, self.bias_correction)

    def hyper(self, replicas=None) -> optimizers.Hyper:
        """The optimizer's hyper-parameters of these replicas (rows of the replica table; default
        all), each a per-replica tensor like η."""
        reps = self.replicas() if replicas is None else replicas
        col = lambda name: torch.tensor([getattr(r, name) for r in reps], dtype=torch.float64)  # noqa: E731
        return optimizers.Hyper(col("eta"), **{h: col(h) for h in HYPER}, bias_correction=self.bias_correction)

    def edges(self) -> np.ndarray:
        """Each replica's stability threshold on its sharpness (that of P⁻¹H for rmsprop and
        adam): 2/η for gd, (2 + 2β)/η for momentum, … (`optimizers.edge`)."""
        h = self.hyper()
        return optimizers.edge(self.optimizer, h.eta, beta=h.beta, beta1=h.beta1).numpy()

    def check_device(self):
        try:
            dev = torch.device(self.device)
        except RuntimeError:
            raise LandscapeError(f"unknown device '{self.device}'; use cpu, cuda or cuda:N") from None
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                raise LandscapeError(
                    f"device '{self.device}' asked for, but this machine has no CUDA GPU (torch {torch.__version__})"
                )
            if dev.index is not None and dev.index >= torch.cuda.device_count():
                raise LandscapeError(f"device '{self.device}' does not exist: {torch.cuda.device_count()} GPU(s) here")
        elif dev.type != "cpu":
            raise LandscapeError(f"unsupported device '{self.device}'; use cpu or cuda")

    # --- derived ------------------------------------------------------------------------
    def hessian_steps(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Steps in [start, stop) whose spectrum is recorded: every `hessian_every`-th step and,
        with `hessian_pairs`, the step after it. On a period-2 bounce λ1(θ_t) alternates between
        two branches from step to step; a pair samples both, whatever the parity of t."""
        stop = self.steps if stop is None else min(stop, self.steps)
        he = self.hessian_every
        lo = max(start - 1, 0) if self.hessian_pairs else start  # a pair may begin just before start
        sites = np.arange(-(-lo // he) * he, stop, he, dtype=np.int64)
        steps = np.union1d(sites, sites + 1) if self.hessian_pairs else sites
        return steps[(steps >= start) & (steps < stop)]

    def density_nodes(self, num_params: int) -> int:
        """Quadrature nodes per ρ(λ) vector: Lanczos in an n-dimensional space stops after n steps;
        the dense spectrum's one vector has a node per eigenvalue."""
        return num_params if self.dense_spectrum(num_params) else min(self.density_steps, num_params)

    def density_vector_count(self, num_params: int) -> int:
        """ρ(λ)'s vectors: V for SLQ, one (the exact measure) for the dense spectrum."""
        return 1 if self.dense_spectrum(num_params) else self.density_vectors

    def dense_spectrum(self, num_params: int) -> bool:
        """Whether the density, trace and bottom eigenvalues come from the whole spectrum."""
        if self.density_method == "auto":
            return num_params <= DENSE_SPECTRUM_BELOW
        return self.density_method == "dense"

    def replicas(self) -> tuple[Replica, ...]:
        """The replica table: `replica_table` if given (a sweep's batch), else the product
        seeds × etas × amplitudes × periods."""
        hyper = [getattr(self, HYPER_KNOBS[h]) for h in HYPER]
        rows = self.replica_table or itertools.product(self.seeds, self.etas, self.amplitudes, self.periods, *hyper)
        return tuple(_row(r) for r in rows)

    # --- (de)serialisation ------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        raw = json.loads(text)
        # stores written before the step strategies kept two flags
        compiled, fused = raw.pop("compile", False), raw.pop("fused", False)
        raw.setdefault("step", "fused" if fused else "compile" if compiled else "eager")
        for h in HYPER:  # stores of this release's first optimizer commits kept one value each
            if h in raw:
                raw[HYPER_KNOBS[h]] = [raw.pop(h)]
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise LandscapeError(f"stored config has unknown keys: {', '.join(sorted(unknown))}")
        for k in ("etas", "amplitudes", "periods", "seeds", *(HYPER_KNOBS[h] for h in HYPER)):
            if k in raw:
                raw[k] = tuple(raw[k])
        raw.setdefault("hessian_pairs", False)  # stores written before pairs existed
        raw.setdefault("eig_oversample", 1)
        raw["model_args"] = tuple(raw.get("model_args", ()))
        return cls(**raw)
