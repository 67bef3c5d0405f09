"""The engine's training step against the peers a researcher would pick instead.

Runners, all in this one process, from the same θ0 and the same Γ(t), one thread each,
interleaved in every repeat (engine, engine --compile, torch.func ensemble compiled,
JAX jit(vmap) + lax.scan):

- `engine`: `landscape.engines.mlp.MLPEngine.step` (eager), what `landscape record` runs;
- `engine+compile`: the same step under `torch.compile` (`landscape record --compile`), the
  steps between two validation steps in one call (a scan, `MLPEngine.steps`);
- `engine+fused`: the hand-fused C++ step (`landscape record --fused`), the steps between two
  validation steps in one call;
- `torch.func+compile`: `nn.Sequential` MLP, `functional_call` + `grad` + `vmap` over
  stacked parameters, the whole vmapped step under `torch.compile`;
- `torch.func+compile-segment`: the same, the `--eval-every` steps of a segment unrolled into
  one compiled graph (one call per segment: torch.compile's best case here);
- `jax`: the same MLP in JAX, `jit(vmap(step))` with `lax.scan` over the eval interval
  (skipped with one line when JAX is not installed: `pip install jax`);
- `jax+scan`: JAX at its best case, the whole run one jitted call: an outer `lax.scan` over the
  eval intervals (the validation accuracy at each one's first step) around the inner scan of
  steps, so Python is not entered between intervals (steps-only rows: it has no eigensolver).

Every runner records what the recorder records per step (dynamical and static loss,
training accuracy) and the validation accuracy every `--eval-every` steps, and must end at
the engine's θ (the max |Δθ| is printed). DCE, A = 70, T = 5000, η = 1 (the reference run).
Peak memory per runner: freed heap pages are returned (malloc_trim), the process's resident
high-water mark is reset before the runner (`/proc/self/clear_refs`) and read after it
(VmHWM), less the resident size before: the memory the runner touches beyond what it holds.

    python bench/bench_peers.py --widths 10 100 1000 --points 300 3000 --replicas 1 16 64 256 \\
        --dtype float64 float32 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch
from fma_peak import peak as fma_peak
from harness import Table, reset_peak, rss_mb
from torch import nn
from torch.func import functional_call, grad, vmap

from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.machine.perf import keep_freed_memory
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec

A, T, ETA = 70.0, 5000, 1.0
ALL = (
    "engine",
    "engine+compile",
    "engine+fused",
    "torch.func+compile",
    "torch.func+compile-segment",
    "jax",
    "jax+scan",
)

try:  # JAX is a peer, not a dependency
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover - depends on the machine
    jax = None


class Problem:
    """Data, Γ(t) (S, R, C) and θ0 shared by every runner."""

    def __init__(self, width, points, R, steps, dtype):
        per = points // 3
        self.data = spiral_dataset(per, seed=0, val_seed=1)
        self.spec = MLPSpec(2, width, 3)
        self.width, self.R, self.steps, self.dtype = width, R, steps, dtype
        self.eng = MLPEngine(self.spec, self.data, "dce", [ETA] * R, [A] * R, [T] * R, dtype=dtype)
        self.theta0 = self.spec.init(range(R), dtype)
        self.G = self.eng.gamma(list(range(steps)))  # (S, R, C)

    def layers0(self):
        """θ0 as (W1 (R, in, out), b1, W2, b2)."""
        (W1, b1), (W2, b2) = self.spec.unflatten(self.theta0)
        return W1, b1, W2, b2


def run_engine(pb: Problem, eval_every: int, mode: str, spectra_every: int, dense_below: int = 0):
    eng = pb.eng
    if mode != "eager":
        kw = {"step": mode}  # compile or fused
        eng = MLPEngine(pb.spec, pb.data, "dce", [ETA] * pb.R, [A] * pb.R, [T] * pb.R, dtype=pb.dtype, **kw)
    buf = torch.empty((4, pb.R, pb.steps), dtype=pb.dtype)
    eig = torch.empty((pb.R, 2), dtype=pb.dtype)

    def go():
        theta, warm = pb.theta0, None
        for t in range(0, pb.steps, eval_every):  # a segment per validation step, as the recorder cuts
            if spectra_every and t % spectra_every == 0:  # top-2, warm-started, tol 1e-3 (the recorder's)
                res = top_k(eng, theta, t, 2, v0=warm, tol=1e-3, salt=t, dense_below=dense_below, G=pb.G[t])
                warm, eig[:] = res.block, res.eigvals
            theta, m = eng.steps(theta, t, pb.G[t : t + eval_every], True)
            for i, name in enumerate(("loss", "loss_static", "train_acc", "val_acc")):
                buf[i, :, t : t + eval_every] = getattr(m, name).transpose(0, 1)
        return theta.detach().cpu().double().numpy(), eig.double().numpy()

    return go


def run_torchfunc(pb: Problem, eval_every: int, segment: bool = False):
    """The torch.func ensemble: one compiled call per step, or (segment) one per segment of
    `eval_every` steps, the steps unrolled into one graph (torch.compile at its best here)."""
    net = nn.Sequential(nn.Linear(2, pb.width), nn.ReLU(), nn.Linear(pb.width, 3)).to(pb.dtype)
    W1, b1, W2, b2 = pb.layers0()
    p0 = {"0.weight": W1.transpose(1, 2), "0.bias": b1, "2.weight": W2.transpose(1, 2), "2.bias": b2}
    p0 = {k: v.contiguous() for k, v in p0.items()}
    X, y = torch.as_tensor(pb.data.X, dtype=pb.dtype), torch.as_tensor(pb.data.y)
    Xv, yv = torch.as_tensor(pb.data.X_val, dtype=pb.dtype), torch.as_tensor(pb.data.y_val)

    def loss(p, G):
        out = functional_call(net, p, (X,))
        nll = nn.functional.cross_entropy(out, y, reduction="none")
        return (G[y] * nll).mean(), (out, nll.mean())

    def step(p, G, evaluate: bool):
        g, (out, static) = grad(loss, has_aux=True)(p, G)
        F = (G[y] * nn.functional.cross_entropy(out, y, reduction="none")).mean()
        acc = (out.argmax(-1) == y).to(pb.dtype).mean()
        val = (functional_call(net, p, (Xv,)).argmax(-1) == yv).to(pb.dtype).mean() if evaluate else F * float("nan")
        return {k: p[k] - ETA * g[k] for k in p}, torch.stack([F, static, acc, val])

    buf = torch.empty((pb.steps, pb.R, 4), dtype=pb.dtype)

    def theta_of(p) -> np.ndarray:  # θ (R, n) in the engine's layout (Linear weights are (out, in))
        flat = [p["0.weight"].transpose(1, 2), p["0.bias"], p["2.weight"].transpose(1, 2), p["2.bias"]]
        return torch.cat([x.reshape(pb.R, -1) for x in flat], 1).detach().double().numpy()

    if segment:

        def seg(p, Gs):
            ms = []
            for i in range(eval_every):  # unrolled by dynamo: the whole segment one graph
                p, m = vmap(lambda p, G, e=(i == 0): step(p, G, e))(p, Gs[i])
                ms.append(m)
            return p, torch.stack(ms)

        vseg = torch.compile(seg, fullgraph=True, dynamic=False)

        def go_segments():
            p = p0
            for t in range(0, pb.steps, eval_every):
                p, buf[t : t + eval_every] = vseg(p, pb.G[t : t + eval_every])
            return theta_of(p), None

        return go_segments
    vstep = {e: torch.compile(vmap(lambda p, G, e=e: step(p, G, e)), fullgraph=True, dynamic=False) for e in (0, 1)}

    def go():
        p = p0
        for t in range(pb.steps):
            p, m = vstep[int(t % eval_every == 0)](p, pb.G[t])
            buf[t] = m
        return theta_of(p), None

    return go


def jax_problem(pb: Problem):
    """The JAX peer's pieces, shared by its two runners: θ0 as a pytree (W1, b1, W2, b2), Γ(t),
    the loss, the replica-vmapped step (θ, F, static loss, training accuracy) and the
    replica-vmapped validation accuracy."""
    dt = jnp.float64 if pb.dtype == torch.float64 else jnp.float32
    p0 = tuple(jnp.asarray(x.numpy(), dtype=dt) for x in pb.layers0())
    X, y = jnp.asarray(pb.data.X, dtype=dt), jnp.asarray(pb.data.y)
    Xv, yv = jnp.asarray(pb.data.X_val, dtype=dt), jnp.asarray(pb.data.y_val)
    G = jnp.asarray(pb.G.numpy(), dtype=dt)

    def forward(p, X):
        W1, b1, W2, b2 = p
        return jax.nn.relu(X @ W1 + b1) @ W2 + b2

    def loss(p, G):
        f = forward(p, X)
        nll = -jnp.take_along_axis(jax.nn.log_softmax(f), y[:, None], axis=1)[:, 0]
        return jnp.mean(G[y] * nll), (f, jnp.mean(nll))

    def step(p, G):
        (F, (f, static)), g = jax.value_and_grad(loss, has_aux=True)(p, G)
        acc = jnp.mean(jnp.argmax(f, -1) == y).astype(dt)
        return jax.tree_util.tree_map(lambda a, b: a - ETA * b, p, g), jnp.stack([F, static, acc])

    vval = jax.vmap(lambda p: jnp.mean(jnp.argmax(forward(p, Xv), -1) == yv).astype(dt))
    return p0, G, loss, jax.vmap(step), vval


def flat_theta(pb: Problem, p) -> np.ndarray:
    """θ (R, n) in the engine's layout from the JAX pytree."""
    W1, b1, W2, b2 = (np.asarray(x, dtype=np.float64) for x in p)
    return np.concatenate([W1.reshape(pb.R, -1), b1, W2.reshape(pb.R, -1), b2], 1)


def run_jax(pb: Problem, eval_every: int, spectra_every: int):
    p0, G, loss, vstep, vval = jax_problem(pb)
    dt = G.dtype

    @jax.jit
    def chunk(p, Gs):
        val = vval(p)  # at the chunk's first step, as --eval-every does
        p, ms = jax.lax.scan(vstep, p, Gs)
        return p, ms, val

    # spectra: JAX's own block eigensolver (LOBPCG) on forward-over-reverse HVPs, warm-started
    # from the last eigenvectors, residual ≈ 1e-3·λ as the engine's
    from jax.experimental.sparse.linalg import lobpcg_standard
    from jax.flatten_util import ravel_pytree

    n = pb.spec.num_params
    unravel = ravel_pytree(jax.tree_util.tree_map(lambda x: x[0], p0))[1]

    def top2(p, G, X):
        flat, _ = ravel_pytree(p)
        gfun = lambda q: ravel_pytree(jax.grad(lambda r: loss(unravel(r), G)[0])(q))[0]
        H = lambda V: jax.vmap(lambda v: jax.jvp(gfun, (flat,), (v,))[1], in_axes=1, out_axes=1)(V)
        vals, vecs, _ = lobpcg_standard(H, X, m=100, tol=1e-3 / (20 * n))
        return vals, vecs

    vtop2 = jax.jit(jax.vmap(top2))
    X0 = jax.random.normal(jax.random.PRNGKey(0), (pb.R, n, 2), dtype=dt)

    def go():
        p, out, X, vals = p0, [], X0, None
        for t in range(0, pb.steps, eval_every):
            if spectra_every and t % spectra_every == 0:
                vals, X = vtop2(p, G[t], X)
            p, ms, val = chunk(p, G[t : t + eval_every])
            out.append((ms, val))
        jax.block_until_ready(p)
        return flat_theta(pb, p), None if vals is None else np.asarray(vals, dtype=np.float64)

    return go


def run_jax_scan(pb: Problem, eval_every: int):
    """The whole run in one jitted call (JAX's best case): scans of scans."""
    p0, G, _, vstep, vval = jax_problem(pb)
    segments = G[: pb.steps].reshape(pb.steps // eval_every, eval_every, *G.shape[1:])

    def segment(p, Gs):
        val = vval(p)
        p, ms = jax.lax.scan(vstep, p, Gs)
        return p, (ms, val)

    whole = jax.jit(lambda p, S: jax.lax.scan(segment, p, S))

    def go():
        p, _ = whole(p0, segments)
        jax.block_until_ready(p)
        return flat_theta(pb, p), None

    return go


def gemm_gflops(dtype) -> float:
    """The machine's limit for this dtype on one thread: a large GEMM's rate (MKL/oneDNN reach
    ≈ 90 % of the FMA peak), best of five."""
    a = torch.randn(1024, 1024, dtype=dtype)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        torch.mm(a, a)
        best = max(best, 2 * 1024**3 / (time.perf_counter() - t0) / 1e9)
    return best


def step_flops(width: int, P: int, d: int = 2, C: int = 3) -> float:
    """Arithmetic of one step of one replica: per point and hidden unit 2d (z) + 2C (logits)
    + 2C (∂h) + 2C (∂W2) + 2d (∂W1) + 1 (∂b1)."""
    return P * width * (4 * d + 6 * C + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--points", type=int, nargs="+", default=[300, 3000])
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--dtype", nargs="+", default=["float64"], choices=["float64", "float32"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--spectra-every", type=int, nargs="+", default=[0, 25], help="0: steps only")
    ap.add_argument("--work", type=float, default=2e9, help="flops per runner per repeat (sets the steps)")
    ap.add_argument("--max-bytes", type=float, default=2e9, help="skip cells whose activations exceed this")
    ap.add_argument(
        "--eig-dense-below",
        type=int,
        default=0,
        help="the engines' spectra from the whole Hessian up to this many parameters",
    )
    default = ["engine", "engine+fused", "torch.func+compile", "jax", "jax+scan"]
    ap.add_argument("--runners", nargs="+", default=default, choices=ALL)
    ap.add_argument("--json", default=None, help="also write the table here (bench/tables.py puts it in the docs)")
    args = ap.parse_args()
    if any(e % args.eval_every for e in args.spectra_every):
        ap.error("--spectra-every must be multiples of --eval-every (spectra at segment starts)")
    torch.set_num_threads(1)
    keep_freed_memory()
    runners = list(args.runners)
    if jax is None and {"jax", "jax+scan"} & set(runners):
        print("# JAX is not installed (pip install jax): its columns are skipped")
        runners = [r for r in runners if not r.startswith("jax")]
    print(
        f"# {platform.processor() or platform.machine()}, 1 thread per runner, torch {torch.__version__}"
        + (f", jax {jax.__version__}" if jax else "")
        + f", DCE, validation every {args.eval_every} steps, {args.repeats} repeats; "
        "ratio = engine's run-steps/s ÷ the runner's, per repeat (min / median / max)"
    )
    columns = (
        ["dtype", "width", "P", "R", "spectra every", "steps"]
        + [f"{r} run-steps/s" for r in ALL]
        + ["best engine ÷ best peer (min / median / max)", "best engine GFLOP/s (of GEMM; of FMA peak)",
           "max Δθ (Δλ rel.) vs engine", "peak MB (runners in order)"]
    )  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    args.table = Table("peers", columns, note=f"{args.repeats} interleaved repeats, one thread per runner.")
    for dname in args.dtype:
        dtype = getattr(torch, dname)
        args.gemm = gemm_gflops(dtype)
        args.fma = fma_peak(dname)[0]
        print(f"# {dname} on one thread: torch.mm {args.gemm:.1f} GFLOP/s, FMA peak {args.fma:.1f} GFLOP/s "
              "(bench/fma_peak.py)")  # fmt: skip
        for width in args.widths:
            for P in args.points:
                for R in args.replicas:
                    for every in args.spectra_every:
                        cell(args, runners, dname, dtype, width, P, R, every)
    if args.json:
        print(f"# table written to {args.table.save(args.json)}")


def cell(args, runners, dname, dtype, width, P, R, every):
    """One row: every runner on the same problem, interleaved over the repeats."""
    label = [dname, str(width), str(P), str(R), str(every or "–")]
    if R * width * P * 8 * 6 > args.max_bytes:  # only the fused engine stores no activations
        runners = [r for r in runners if r == "engine+fused"]
        if not runners:
            print(f"| {' | '.join(label)} | – | skipped: activations over --max-bytes |")
            return
    if every:  # peers without an eigensolver of their own sit this row out
        runners = [r for r in runners if not r.startswith("torch.func") and r != "jax+scan"]
    engines = [r for r in runners if r.startswith("engine")]
    peers = [r for r in runners if not r.startswith("engine")]
    flops = 6 * 2 * R * width * P * 3 * 2 + 1e5 * R  # forward, backward, validation
    steps = int(np.clip(args.work / flops, args.eval_every, 4000)) // args.eval_every * args.eval_every
    torch._dynamo.reset()  # each cell compiles its own shapes (the recompile limit is per function)
    pb = Problem(width, P, R, steps, dtype)
    ev = args.eval_every
    make = {
        "engine": lambda: run_engine(pb, ev, "eager", every, args.eig_dense_below),
        "engine+compile": lambda: run_engine(pb, ev, "compile", every, args.eig_dense_below),
        "engine+fused": lambda: run_engine(pb, ev, "fused", every, args.eig_dense_below),
        "torch.func+compile": lambda: run_torchfunc(pb, ev),
        "torch.func+compile-segment": lambda: run_torchfunc(pb, ev, segment=True),
        "jax": lambda: run_jax(pb, ev, every),
        "jax+scan": lambda: run_jax_scan(pb, ev),
    }
    fns, rates, peak, result = {}, {r: [] for r in runners}, {}, {}
    for r in runners:
        fns[r] = make[r]()
        result[r] = fns[r]()  # warm-up: compiles, and the trajectory to compare
        fns[r]()
    for _ in range(args.repeats):
        for r in runners:
            reset_peak()
            base = rss_mb("VmRSS")
            t0 = time.perf_counter()
            fns[r]()
            rates[r].append(R * steps / (time.perf_counter() - t0))
            peak[r] = max(peak.get(r, 0.0), rss_mb("VmHWM") - base)
    ratios = sorted(
        max(rates[e][i] for e in engines) / max(rates[q][i] for q in peers) if peers else float("nan")
        for i in range(args.repeats)
    )
    ref = result[runners[0]]
    dev = max(np.abs(result[r][0] - ref[0]).max() for r in runners)
    eig = [
        np.abs(result[r][1] - ref[1]).max() / np.abs(ref[1]).max()
        for r in runners
        if every and result[r][1] is not None and ref[1] is not None
    ]
    cells = [f"{statistics.median(rates[r]):,.0f}" if r in rates else "–" for r in ALL]
    mem = " · ".join(f"{peak[r]:.0f}" for r in runners)
    gf = max(statistics.median(rates[e]) for e in engines) * step_flops(width, P) / 1e9
    row = [
        *label,
        str(steps),
        *cells,
        f"{ratios[0]:.2f} / **{statistics.median(ratios):.2f}** / {ratios[-1]:.2f}"
        if peers
        else "no peer: activations over --max-bytes",
        f"{gf:.1f} ({gf / args.gemm:.0%}; {gf / args.fma:.0%})",
        f"{dev:.0e}{f' (λ {max(eig):.0e})' if eig else ''}",
        mem,
    ]
    print("| " + " | ".join(row) + " |", flush=True)
    args.table.add(row, run_steps_per_s=rates, ratios=ratios, peak_mb=peak, gemm=args.gemm, fma_peak=args.fma)


if __name__ == "__main__":
    main()
