"""Cohen et al.'s fc-tanh (784-200-200-10) on MNIST-5k: the training step against a plain torch
loop and JAX jit, the top Hessian eigenvalue against PyHessian, and peak memory against the
number of examples with and without `--chunk`.

Step runners, one process, one thread each, the same θ0, interleaved (`harness.interleaved`),
full batch (the 4,000 training examples), MSE, gradient descent, `--steps` steps a repeat:

- `engine`: `MLPEngine` (the hand-written passes, eager step: what `landscape record --data
  mnist5k --depth 2 --width 200 --activation tanh` runs), F and accuracy recorded;
- `torch loop`: nn.Sequential, autograd's backward and `p -= η p.grad`, F recorded;
- `jax jit`: `jit(value_and_grad)` with the update inside (skipped without JAX).
Ratio = runner time ÷ engine time per repeat (> 1: the engine is faster); float32 and float64.

Top eigenvalue: `curvature.spectrum.top_k` (block Lanczos, k = 2 as the recorder runs it, tol
1e-3) against PyHessian 0.1's `hessian(...).eigenvalues(top_n=1)` (power iteration with double
backward) at tol 1e-3 and 1e-5, float64, each runner's relative error beside its time (a power
iteration's tolerance is on the change of its estimate, Lanczos's on the residual).

Fused against eager on MNIST's 784 inputs (one hidden layer of 512, 5 replicas): the fused
kernel is written for the spiral's two inputs.

Peak memory: a fresh process per cell runs one step and one top-2 spectrum of 4 replicas on P
spiral points (2 inputs, so the activations are what grows with P; `harness.peak_mb_alone`),
whole batch against chunks of 500.

    python bench/bench_mnist.py --steps 5 --repeats 3
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from harness import interleaved, peak_mb_alone, ratios, recording, spread, threads_line

from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.problem import benchmarks
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec

try:  # a peer, not a dependency
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover - depends on the machine
    jax = None

ETA, WIDTH = 0.02, 200


def problem(dtype, points: int | None = None, chunk: int = 0):
    data = benchmarks.load("mnist5k" if points is None else f"mnist5k:{points}")
    spec = MLPSpec(data.input_dim, WIDTH, data.num_classes, depth=2, activation="tanh")
    eng = MLPEngine(spec, data, "mse", [ETA], [1.0], [100], dtype=dtype, chunk=chunk)
    return eng, spec.init([0], dtype)


def module_of(eng: MLPEngine, theta: torch.Tensor) -> torch.nn.Sequential:
    """The engine's network as nn.Sequential holding θ (θ keeps W as (in, out), Linear (out, in))."""
    sizes = eng.spec.sizes
    mods: list[torch.nn.Module] = []
    for i, (W, b) in enumerate(eng.spec.unflatten(theta)):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1], dtype=theta.dtype)
        with torch.no_grad():
            lin.weight.copy_(W[0].T), lin.bias.copy_(b[0])
        mods += [lin, torch.nn.Tanh()] if i < len(sizes) - 2 else [lin]
    return torch.nn.Sequential(*mods)


def mse(f, Y):
    return ((f - Y) ** 2).sum(-1).mean()


def step_runners(dtype, steps: int):
    eng, theta0 = problem(dtype)
    G = eng.gamma(0)

    def engine():
        th = theta0
        for t in range(steps):
            th, m = eng.step(th, t, G, evaluate=False)
        return th

    net = module_of(eng, theta0)
    state0 = {k: v.clone() for k, v in net.state_dict().items()}
    X, Y = eng.X, eng.Y

    def torch_loop():
        net.load_state_dict(state0)
        for _ in range(steps):
            net.zero_grad(set_to_none=True)
            F = mse(net(X), Y)
            F.backward()
            with torch.no_grad():
                for p in net.parameters():
                    p.sub_(ETA * p.grad)
        return float(F.detach())

    runners = {"engine": engine, "torch loop": torch_loop}
    if jax is not None:
        jdt = jnp.float64 if dtype == torch.float64 else jnp.float32
        p0 = [jnp.asarray(x[0].numpy(), dtype=jdt) for pair in eng.spec.unflatten(theta0) for x in pair]
        Xj, Yj = jnp.asarray(X.numpy(), dtype=jdt), jnp.asarray(Y.numpy(), dtype=jdt)

        def forward(p, X):
            W1, b1, W2, b2, W3, b3 = p
            h = jnp.tanh(X @ W1 + b1)
            h = jnp.tanh(h @ W2 + b2)
            return h @ W3 + b3

        @jax.jit
        def jstep(p):
            F, g = jax.value_and_grad(lambda q: jnp.mean(jnp.sum((forward(q, Xj) - Yj) ** 2, -1)))(p)
            return [a - ETA * b for a, b in zip(p, g)], F

        jax.block_until_ready(jstep(p0))  # compiled before timing

        def jax_jit():
            p = p0
            for _ in range(steps):
                p, F = jstep(p)
            return jax.block_until_ready(F)

        runners["jax jit"] = jax_jit
    return runners


def top_eigen(repeats: int):
    """Time to the top eigenvalue, each runner with the accuracy it reaches: the error against
    λ1 converged to a residual of 1e-10 (block Lanczos, computed once)."""
    from pyhessian import hessian

    eng, theta = problem(torch.float64)
    net = module_of(eng, theta)
    exact = float(top_k(eng, theta, 0, 2, tol=1e-10, max_iter=400).eigvals[0, 0])
    out, peaks = {}, {}

    def ours():
        return float(top_k(eng, theta, 0, 2, tol=1e-3, max_iter=100).eigvals[0, 0])

    def pyh(tol):
        def go():
            torch.manual_seed(0)
            return float(hessian(net, mse, data=(eng.X, eng.Y), cuda=False).eigenvalues(maxIter=300, tol=tol)[0][0])

        return go

    runners = {"landscape tol 1e-3": ours, "PyHessian tol 1e-3": pyh(1e-3), "PyHessian tol 1e-5": pyh(1e-5)}
    times = interleaved(recording(runners, out, peaks), repeats)
    r = ratios(times, "landscape tol 1e-3")
    print(f"\ntop Hessian eigenvalue, fc-tanh MNIST-5k at θ0, float64 (n = {eng.num_params}), {repeats} repeats;")
    print(f"λ1 = {exact:.10f} (residual 1e-10); landscape computes the top 2, PyHessian the top 1")
    print(f"{'runner':20} {'λ1':>12} {'rel. error':>10} {'median s':>9} {'ratio min/med/max':>20} {'peak MB':>8}")
    for name in times:
        med, err = float(np.median(times[name])), abs(out[name] - exact) / exact
        print(f"{name:20} {out[name]:12.6f} {err:10.1e} {med:9.3f} {spread(r[name]):>20} {peaks[name]:8.0f}")


def fused_at_784(repeats: int, steps: int = 4) -> None:
    """The fused C++ step against the eager one on MNIST's 784 inputs (one hidden layer of 512,
    5 replicas, 1,000 examples): the fused kernel is written for the spiral's 2 inputs."""
    data = benchmarks.load("mnist5k:1000")
    spec = MLPSpec(784, 512, 10)
    th = spec.init(range(5))
    runners = {}
    for step in ("eager", "fused"):
        eng = MLPEngine(spec, data, "dce", [0.5] * 5, [70.0] * 5, [500] * 5, step=step)
        G = eng.gamma(list(range(steps)))
        eng.steps(th, 0, G[:1], False)  # built and warm
        runners[step] = lambda eng=eng, G=G: eng.steps(th, 0, G, False)
    out, peaks = {}, {}
    times = interleaved(recording(runners, out, peaks), repeats)
    r = ratios(times, "eager")
    print(f"\nfused vs eager, 784-512-10 ReLU, 5 replicas, 1,000 examples, {steps} steps a repeat")
    for name in times:
        print(f"{name:8} {steps / float(np.median(times[name])):8.2f} steps/s  ratio {spread(r[name])}")


def one_cell(points: int, chunk: int) -> None:
    """One step and one top-2 spectrum of 4 replicas of a 2-200-200-3 tanh network on P spiral
    points: inputs so small that the activations (P × width × replicas) are what grows."""
    data = spiral_dataset(points // 3, seed=0, val_seed=1)
    spec = MLPSpec(2, WIDTH, 3, depth=2, activation="tanh")
    eng = MLPEngine(spec, data, "mse", [ETA] * 4, [1.0] * 4, [100] * 4, chunk=chunk)
    theta, _ = eng.step(spec.init(range(4)), 0, evaluate=False)
    top_k(eng, theta, 1, 2, tol=1e-3, max_iter=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--points", type=int, nargs="+", default=[3000, 12000, 30000])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(threads_line(), f"; fc-tanh 784-200-200-10, MNIST-5k (4,000 training examples), MSE, η = {ETA}")
    for dtype in (torch.float32, torch.float64):
        runners = step_runners(dtype, args.steps)
        out, peaks = {}, {}
        times = interleaved(recording(runners, out, peaks), args.repeats)
        r = ratios(times, "engine")
        print(f"\nstep, {str(dtype)[6:]}, {args.steps} steps a repeat, {args.repeats} repeats")
        print(f"{'runner':12} {'steps/s':>8} {'ratio min/med/max':>20} {'peak MB':>8}")
        for name in times:
            sps = args.steps / float(np.median(times[name]))
            print(f"{name:12} {sps:8.2f} {spread(r[name]):>20} {peaks[name]:8.0f}")
    top_eigen(args.repeats)
    fused_at_784(args.repeats)
    print("\npeak memory (MB, a fresh process: one step and one top-2 spectrum of 4 replicas of a")
    print("2-200-200-3 tanh network on P spiral points), float64")
    print(f"{'examples':>8} {'whole batch':>12} {'chunks of 500':>14}")
    for P in args.points:
        whole, parts = peak_mb_alone(one_cell, P, 0), peak_mb_alone(one_cell, P, 500)
        print(f"{P:8d} {whole:12.0f} {parts:14.0f}")


if __name__ == "__main__":
    main()
