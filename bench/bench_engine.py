"""Run-steps per second: a plain per-run PyTorch loop against the batched engine.

The reference problem: spiral, 300 points, width 100, float64, DCE with A = 70,
T = 5000, η = 1; per step both record the same things (dynamical and static loss,
training and validation accuracy). "With Hessian" adds the top-2 eigenpairs
at (t, t + 1) every 50 steps (the recorder's default): scipy's eigsh on autograd Hessian-vector products (warm-started
from the last v1) for the plain loop, the batched warm-started Lanczos for the
engine, both to relative tolerance 1e-3. Everything is measured in this one
process, so the ratios hold on whatever machine runs it.

    python bench/bench_engine.py [--steps 250] [--replicas 1 16 64] [--dtype float64]
"""

from __future__ import annotations

import argparse
import platform

import numpy as np
import scipy.sparse.linalg as sla
import torch
from harness import timed
from torch import nn

from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.machine.perf import keep_freed_memory
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec

A, T, ETA, EVERY = 70.0, 5000, 1.0, 50  # spectra at (t, t + 1) every EVERY steps


def gamma_np(t, C=3):
    tau, c = t % T, (t // T) % C
    w = 1 + 2 * (A - 1) * tau / T if tau < T / 2 else 2 * A - 1 - 2 * (A - 1) * tau / T
    raw = np.ones(C)
    raw[c] = w
    return C * raw / raw.sum()


def plain_loop(data, steps, hessian, dtype):
    """What one writes without this package: nn.Module, autograd, one run at a time."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 100), nn.ReLU(), nn.Linear(100, 3)).to(dtype)
    X, y = torch.tensor(data.X, dtype=dtype), torch.tensor(data.y)
    Xv, yv = torch.tensor(data.X_val, dtype=dtype), torch.tensor(data.y_val)
    params = list(net.parameters())
    log, v1 = [], None

    def dce(t):
        out = net(X)
        w = torch.tensor(gamma_np(t), dtype=dtype)[y]
        nll = nn.functional.cross_entropy(out, y, reduction="none")
        return (w * nll).mean(), out, nll.mean()

    def top2(t):
        nonlocal v1
        loss, _, _ = dce(t)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        n = flat.numel()

        def mv(v):
            vt = torch.as_tensor(v.ravel(), dtype=dtype)
            hv = torch.autograd.grad(flat, params, vt, retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv]).detach().double().numpy()

        vals, vecs = sla.eigsh(
            sla.LinearOperator((n, n), matvec=mv, dtype=np.float64), k=2, which="LA", tol=1e-3, v0=v1
        )
        v1 = vecs[:, -1]
        return vals

    for t in range(steps):
        if hessian and t % EVERY in (0, 1):
            log.append(top2(t))
        loss, out, static = dce(t)
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= ETA * p.grad
            acc = (out.argmax(1) == y).to(dtype).mean()
            vacc = (net(Xv).argmax(1) == yv).to(dtype).mean()
        log.append((loss.item(), static.item(), acc.item(), vacc.item()))
    return log


def engine_loop(data, R, steps, hessian, dtype):
    spec = MLPSpec(2, 100, 3)
    eng = MLPEngine(spec, data, "dce", [ETA] * R, [A] * R, [T] * R, dtype=dtype)
    theta = spec.init(range(R), dtype)
    vecs, out = None, []
    G_all = eng.gamma(list(range(steps)))
    for t in range(steps):
        if hessian and t % EVERY in (0, 1):
            res = top_k(eng, theta, t, 2, v0=vecs, tol=1e-3, salt=t)
            vecs = res.block
            out.append(res.eigvals)
        theta, m = eng.step(theta, t, G_all[t])
        out.append(m)
    np.asarray(theta)  # the results reach the host, as the recorder's flush does
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)
    keep_freed_memory()
    data = spiral_dataset(100, seed=0, val_seed=1)
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, "
        f"{args.dtype}, {args.steps} steps, width 100, P = 300"
    )
    plain_loop(data, 20, False, dtype)
    engine_loop(data, 2, 20, True, dtype)  # warm up code paths
    rows = []
    base = {}
    for hess in (False, True):
        s = timed(plain_loop, data, args.steps, hess, dtype)
        base[hess] = args.steps / s
        rows.append(("plain loop", 1, hess, base[hess]))
    for R in args.replicas:
        for hess in (False, True):
            s = timed(engine_loop, data, R, args.steps, hess, dtype)
            rows.append(("engine", R, hess, R * args.steps / s))
    print("| runner | R | spectra (t, t+1) every 50 | run-steps/s | × plain loop | Hessian cost (with/without) |")
    print("|---|---:|:---:|---:|---:|---:|")
    nohess = {(r[0], r[1]): r[3] for r in rows if not r[2]}
    for name, R, hess, rate in rows:
        cost = f"{nohess[(name, R)] / rate:.2f}×" if hess else ""
        print(f"| {name} | {R} | {'yes' if hess else 'no'} | {rate:,.0f} | {rate / base[hess]:.2f} | {cost} |")


if __name__ == "__main__":
    main()
