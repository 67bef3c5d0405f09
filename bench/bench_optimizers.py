"""The fused momentum and Adam steps against JAX jit(vmap) + lax.scan with optax, and the cost
of the preconditioned spectrum beside the plain one.

Runners, all in this one process, one thread each, from the same θ0 and Γ(t), interleaved in
every repeat (`harness.interleaved`), each recording what the recorder records per step (F,
the static loss, training accuracy) and the validation accuracy every `--eval-every` steps:

- `engine+fused`: `MLPEngine` with `step="fused"` and the optimizer (`landscape record --step
  fused --optimizer …`), the steps between two validation steps in one call;
- `engine`: the same with the eager step;
- `jax+optax`: the same MLP in JAX, `optax.sgd(momentum=β)` / `optax.adam`, the step
  `jit(vmap(step))` over replicas (the optimizer state vmapped too) with `lax.scan` over the
  eval interval (skipped with one line without JAX: `pip install jax optax`).

Every runner reaches the fused engine's θ after 50 steps (max |Δθ| printed; over thousands of
steps at the edge of stability rounding grows to O(1) between any two). DCE, A = 70, T = 5000.
Ratio = the runner's time ÷ engine+fused's, per repeat (> 1: the fused step is faster).

    python bench/bench_optimizers.py --replicas 1 16 256 --width 100 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from harness import interleaved, ratios, recording, spread, threads_line

from landscape.config.run import RunConfig
from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.machine.perf import keep_freed_memory
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec

try:  # JAX and optax are peers, not dependencies
    import jax
    import jax.numpy as jnp
    import optax

    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover - depends on the machine
    jax = None

A, T = 70.0, 5000
ETA = {"momentum": 0.5, "adam": 0.003}  # stable on the spiral for the steps timed
BETA, BETA1, BETA2, EPS = 0.9, 0.9, 0.999, 1e-8


class Problem:
    """Data, Γ(t) (S, R, C) and θ0 shared by every runner."""

    def __init__(self, width: int, points: int, R: int, steps: int, opt: str):
        self.data = spiral_dataset(points // 3, seed=0, val_seed=1)
        self.spec = MLPSpec(2, width, 3)
        self.width, self.R, self.steps, self.opt = width, R, steps, opt
        cfg = RunConfig(etas=(ETA[opt],), seeds=tuple(range(R)), betas=(BETA,), beta1s=(BETA1,), beta2s=(BETA2,),
                        epsilons=(EPS,))  # fmt: skip
        self.hyper = cfg.hyper()
        self.theta0 = self.spec.init(range(R), torch.float64)
        self.G = self.engine("eager").gamma(list(range(steps)))

    def engine(self, step: str) -> MLPEngine:
        R = self.R
        return MLPEngine(self.spec, self.data, "dce", [ETA[self.opt]] * R, [A] * R, [T] * R, step=step,
                         optimizer=self.opt, hyper=self.hyper)  # fmt: skip


def run_engine(pb: Problem, step: str, eval_every: int):
    eng = pb.engine(step)
    buf = torch.empty((4, pb.R, pb.steps), dtype=torch.float64)

    def go():
        theta = pb.theta0
        eng.set_optimizer_state(None, 0)
        for t in range(0, pb.steps, eval_every):
            theta, m = eng.steps(theta, t, pb.G[t : t + eval_every], True)
            for i, name in enumerate(("loss", "loss_static", "train_acc", "val_acc")):
                buf[i, :, t : t + eval_every] = getattr(m, name).transpose(0, 1)
        return theta.numpy().copy()

    return go


def run_jax(pb: Problem, eval_every: int):
    (W1, b1), (W2, b2) = pb.spec.unflatten(pb.theta0)
    p0 = tuple(jnp.asarray(x.numpy()) for x in (W1, b1, W2, b2))
    X, y = jnp.asarray(pb.data.X), jnp.asarray(pb.data.y)
    Xv, yv = jnp.asarray(pb.data.X_val), jnp.asarray(pb.data.y_val)
    G = jnp.asarray(pb.G.numpy())
    tx = (optax.sgd(ETA["momentum"], momentum=BETA) if pb.opt == "momentum"
          else optax.adam(ETA["adam"], b1=BETA1, b2=BETA2, eps=EPS))  # fmt: skip

    def forward(p, X):
        W1, b1, W2, b2 = p
        return jax.nn.relu(X @ W1 + b1) @ W2 + b2

    def loss(p, G):
        f = forward(p, X)
        nll = -jnp.take_along_axis(jax.nn.log_softmax(f), y[:, None], axis=1)[:, 0]
        return jnp.mean(G[y] * nll), (f, jnp.mean(nll))

    def step(carry, G):
        p, s = carry
        (F, (f, static)), g = jax.value_and_grad(loss, has_aux=True)(p, G)
        acc = jnp.mean(jnp.argmax(f, -1) == y).astype(jnp.float64)
        upd, s = tx.update(g, s, p)
        return (optax.apply_updates(p, upd), s), jnp.stack([F, static, acc])

    vstep = jax.vmap(step)
    vval = jax.vmap(lambda p: jnp.mean(jnp.argmax(forward(p, Xv), -1) == yv).astype(jnp.float64))
    s0 = jax.vmap(tx.init)(p0)

    @jax.jit
    def chunk(carry, Gs):
        val = vval(carry[0])
        carry, ms = jax.lax.scan(vstep, carry, Gs)
        return carry, ms, val

    def go():
        carry, out = (p0, s0), []
        for t in range(0, pb.steps, eval_every):
            carry, ms, val = chunk(carry, G[t : t + eval_every])
            out.append((ms, val))
        jax.block_until_ready(carry)
        W1, b1, W2, b2 = (np.asarray(x, dtype=np.float64) for x in carry[0])
        return np.concatenate([W1.reshape(pb.R, -1), b1, W2.reshape(pb.R, -1), b2], 1)

    return go


def spectra_cost(pb: Problem, repeats: int) -> str:
    """Seconds of the plain top-2 of H and of the preconditioned top-2 of P⁻¹H at one step of an
    Adam run (after 200 steps, warm from a first call), interleaved."""
    eng = pb.engine("fused")
    theta = eng.advance(pb.theta0, 0, 200)
    P, G = eng.preconditioner(), eng.gamma(200)
    warm = {}

    def plain():
        warm["h"] = top_k(eng, theta, 200, 2, v0=warm.get("h"), tol=1e-3, salt=200, G=G).block

    def pre():
        warm["p"] = top_k(eng, theta, 200, 2, v0=warm.get("p"), tol=1e-3, salt=200, G=G, precondition=P).block

    plain(), pre()
    times = interleaved({"λ(H)": plain, "λ(P⁻¹H)": pre}, repeats)
    r = ratios(times, "λ(H)")["λ(P⁻¹H)"]
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    return f"λ(H) {med['λ(H)']:.1f} ms, λ(P⁻¹H) {med['λ(P⁻¹H)']:.1f} ms; plain ÷ preconditioned {spread(r)}"


def kinds(args) -> dict:
    """The runners of this invocation: name → (maker, its arguments after the problem)."""
    out = {"engine+fused": (run_engine, ("fused", args.eval_every))}
    if args.eager:
        out["engine"] = (run_engine, ("eager", args.eval_every))
    if jax is not None:
        out["jax+optax"] = (run_jax, (args.eval_every,))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16, 256])
    ap.add_argument("--width", type=int, default=100)
    ap.add_argument("--points", type=int, default=300)
    ap.add_argument("--optimizers", nargs="+", default=["momentum", "adam"], choices=list(ETA))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--work", type=float, default=1e6, help="replica-steps per runner per repeat (sets the steps)")
    ap.add_argument("--eager", action="store_true", help="also the eager engine")
    args = ap.parse_args()
    torch.set_num_threads(1)
    keep_freed_memory()
    print(f"# {threads_line()}" + (f", jax {jax.__version__}, optax {optax.__version__}" if jax else ""))
    if jax is None:
        print("# JAX/optax not installed (pip install jax optax): the peer's column is skipped")
    print("| optimizer | width | P | R | steps | runner | replica-steps/s | fused faster by (min / median / max) "
          "| peak MB | max Δθ vs fused after 50 steps |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for opt in args.optimizers:
        for R in args.replicas:
            steps = max(args.eval_every, int(args.work / R) // args.eval_every * args.eval_every)
            steps = min(steps, 4000)
            pb = Problem(args.width, args.points, R, steps, opt)
            fns = {name: f(pb, *a) for name, (f, a) in kinds(args).items()}
            for f in fns.values():
                f()  # warm-up: builds, compiles
            results: dict = {}
            peaks: dict = {}
            times = interleaved(recording(fns, results, peaks), args.repeats)
            r = ratios(times, "engine+fused")
            # the same θ after 50 steps (over thousands, the edge of stability's bouncing
            # amplifies rounding into O(1) differences between any two implementations)
            short = Problem(args.width, args.points, R, 50, opt)
            check = {name: f(short, *a)() for name, (f, a) in kinds(args).items() if name in fns}
            for name in fns:
                rate = R * steps / statistics.median(times[name])
                vs = "—" if name == "engine+fused" else spread([1 / x for x in r[name]])
                dev = np.abs(check[name] - check["engine+fused"]).max()
                print(f"| {opt} | {args.width} | {args.points} | {R} | {steps} | {name} | {rate:,.0f} | {vs} "
                      f"| {peaks[name]:.0f} | {dev:.1e} |")  # fmt: skip
    pb = Problem(args.width, args.points, 16, 200, "adam")
    print(f"# spectrum at one step, Adam, R 16, width {args.width} (top-2, tol 1e-3, warm): {spectra_cost(pb, 5)}")


if __name__ == "__main__":
    main()
