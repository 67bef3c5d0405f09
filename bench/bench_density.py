"""The Hessian's eigenvalue density by stochastic Lanczos quadrature: `landscape`'s batched SLQ
(`ReplicaEngine.density`, what `record --density-steps` and `analyze density` run) against
PyHessian's `hessian(...).density()` at the same M (Lanczos steps) and V (vectors).

The problem: the reference network (spiral, width 100, 603 parameters) at θ of the shipped run
at t = 9000, the Hessian of the dynamical loss F_t, float64 in both (PyHessian allocates in the
default dtype, set to float64 here). PyHessian is timed as its users call it: construction (the
gradient with its graph) and `density(iter=M, n_v=V)`. landscape is timed with the eager
R-operator (torch) and the fused one (`--step fused`, C++), for one replica and, fused, for R
replicas in one block (R = 64 by default: a sweep batch, the recording of ρ(λ, t)); its
per-replica time is the block's time / R. All runners in one process, interleaved per repeat;
the ratio is per repeat (PyHessian time / landscape time per replica); peak resident memory
beyond the start of each runner beside it. Agreement: the largest node of both (λ1 after M
steps) against the dense float64 λ1.

PyHessian 0.1 (the release on PyPI) calls `torch.eig`, which torch 2 removed; the benchmark
gives it that function back through `torch.linalg.eigh` (T is symmetric), its only change.

    pip install pyhessian   # a benchmark peer only, not a dependency
    python bench/bench_density.py --lanczos-steps 80 --vectors 8 --replicas 64 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
import torch
from harness import ROOT, interleaved, ratios, recording, spread, threads_line

from landscape.curvature import quantities
from landscape.problem import losses
from landscape.runs import build
from landscape.runs.opened import Run


def _eig_shim(T, eigenvectors=False):
    """torch.eig as PyHessian 0.1 uses it: (eigenvalues as (n, 2) real/imaginary, vectors)."""
    w, V = torch.linalg.eigh(T)
    return torch.stack([w, torch.zeros_like(w)], dim=1), V


def pyhessian_density(module, X, y, criterion, M, V):
    from pyhessian import hessian

    torch.manual_seed(0)
    h = hessian(module, criterion, data=(X, y), cuda=False)
    nodes, weights = h.density(iter=M, n_v=V)
    return np.asarray(nodes), np.asarray(weights)


def reference_module(eng, theta: np.ndarray) -> torch.nn.Module:
    """The engine's MLP as an nn.Module with θ (θ stores W as (in, out); Linear holds (out, in))."""
    w = eng.spec.width
    m = torch.nn.Sequential(torch.nn.Linear(2, w), torch.nn.ReLU(), torch.nn.Linear(w, 3)).double()
    th, off, tensors = torch.as_tensor(theta), 0, []
    for _, shape in eng.param_map():
        k = int(np.prod(shape))
        tensors.append(th[off : off + k].reshape(shape))
        off += k
    W1, b1, W2, b2 = tensors
    with torch.no_grad():
        m[0].weight.copy_(W1.T), m[0].bias.copy_(b1), m[2].weight.copy_(W2.T), m[2].bias.copy_(b2)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanczos-steps", type=int, default=80)
    ap.add_argument("--vectors", type=int, default=8)
    ap.add_argument("--replicas", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)
    torch.eig = _eig_shim  # type: ignore[attr-defined]
    M, V, R = args.lanczos_steps, args.vectors, args.replicas
    run = Run.open(ROOT / "data" / "dce_w100_A70_T5000.zarr")
    t = 9000
    eng = run.engine([0])
    theta = run.params_at([t], [0])[0, 0]
    G = eng.gamma(t)[:1]
    module = reference_module(eng, theta)
    X, y = eng.X, eng.y
    criterion = lambda f, target: losses.loss(eng.loss_name, f[None], target, eng.Y, G)[0]  # noqa: E731
    th1 = torch.as_tensor(theta)[None]
    thR = th1.expand(R, -1).contiguous()
    GR = G.expand(R, -1)
    fused = build.engine(replace(run.config, step="fused"), run.data, run.config.replicas()[:1])
    seeds = list(range(R))
    print(threads_line(), f"; M = {M}, V = {V}, R = {R}; {args.repeats} repeats; float64")
    out, peaks = {}, {}
    runners = recording(
        {
            "PyHessian": lambda: pyhessian_density(module, X, y, criterion, M, V),
            "landscape eager R=1": lambda: quantities.density(eng, th1, t, M, V, [0]),
            "landscape fused R=1": lambda: quantities.density(fused, th1, t, M, V, [0]),
            f"landscape fused R={R}": lambda: quantities.density(fused, thR, t, M, V, seeds, G=GR),
        },
        out,
        peaks,
    )
    times = interleaved(runners, args.repeats)
    times[f"landscape fused R={R} per replica"] = [x / R for x in times[f"landscape fused R={R}"]]
    r = ratios(times, "PyHessian")
    from tests.reference import dense_hessian

    lam1 = float(np.linalg.eigvalsh(dense_hessian(eng, th1, t, 0))[-1])
    top = {name: float(np.max(v[0]) if name == "PyHessian" else v.nodes.max()) for name, v in out.items()}
    for name, ts in times.items():
        peak = peaks.get(name)
        print(
            f"{name:>26}: {spread(ts, 4)} s; speed vs PyHessian {spread(r[name], 1)}×"
            + (f"; peak MB {peak:.0f}; largest node − dense λ1 = {top[name] - lam1:.1e}" if peak is not None else "")
        )


if __name__ == "__main__":
    main()
