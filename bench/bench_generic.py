"""Run-steps per second of your own model: a plain per-run PyTorch loop against the generic
engine (torch.func replicas) on the shipped digits CNN (examples/cnn.py, 838 parameters,
1,000 8×8 training images, 797 validation images, 10 classes), float64.

Per step both runners compute what the recorder stores (dynamical and static loss,
training and validation accuracy) and take the plain gradient step; DCE with A = 10,
T = 400, η = 0.5. "With spectra" adds the top-2 Hessian eigenpairs at (t, t + 1) every
50 steps: scipy's eigsh on autograd Hessian-vector products (warm-started from the last
v1) for the plain loop, the engine's batched warm-started block Lanczos for the engine,
both to relative tolerance 1e-3. The plain loop does one run at a time, so its rate is the
same for any R; each repeat times it and the engine at every R one after the other, from
the same initial networks, and the ratio is taken per repeat. Peak memory (max RSS) is
measured afterwards, each runner alone in a fresh (spawned) process.

    python bench/bench_generic.py [--steps 100] [--replicas 1 16 64] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics

import numpy as np
import scipy.sparse.linalg as sla
import torch
from harness import ROOT, spread, timed  # noqa: E402  (also puts the checkout on the path)
from harness import peak_mb_alone as peak_mb
from torch import nn

from examples.cnn import make  # noqa: E402
from landscape.curvature.spectrum import top_k
from landscape.engines.module import ModuleEngine  # noqa: E402
from landscape.problem.data import load_dataset  # noqa: E402
from landscape.problem.schedule import gamma  # noqa: E402

A, T, ETA, EVERY = 10.0, 400, 0.5, 50


def plain_loop(data, steps, spectra, seed=0):
    """What one writes without this package: the module, autograd, one run at a time."""
    net = make(seed)
    X, y = torch.tensor(data.X), torch.tensor(data.y)
    Xv, yv = torch.tensor(data.X_val), torch.tensor(data.y_val)
    params = list(net.parameters())
    C = data.num_classes
    G = gamma(list(range(steps)), torch.tensor([A]), torch.tensor([T]), C)[:, 0]  # (steps, C)
    log, v1 = [], None

    def dce(t):
        out = net(X)
        nll = nn.functional.cross_entropy(out, y, reduction="none")
        return (G[t][y] * nll).mean(), out, nll.mean()

    def top2(t):
        nonlocal v1
        loss, _, _ = dce(t)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        flat = torch.cat([g.reshape(-1) for g in grads])
        n = flat.numel()

        def mv(v):
            hv = torch.autograd.grad(flat, params, torch.as_tensor(v.ravel()), retain_graph=True)
            return torch.cat([h.reshape(-1) for h in hv]).detach().numpy()

        op = sla.LinearOperator((n, n), matvec=mv, dtype=np.float64)
        vals, vecs = sla.eigsh(op, k=2, which="LA", tol=1e-3, v0=v1)
        v1 = vecs[:, -1]
        return vals

    for t in range(steps):
        if spectra and t % EVERY in (0, 1):
            log.append(top2(t))
        loss, out, static = dce(t)
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= ETA * p.grad
            acc = (out.argmax(1) == y).double().mean()
            vacc = (net(Xv).argmax(1) == yv).double().mean()
        log.append((loss.item(), static.item(), acc.item(), vacc.item()))
    return log


def engine_loop(data, R, steps, spectra):
    eng = ModuleEngine(make, range(R), data, "dce", [ETA] * R, [A] * R, [T] * R)
    theta, vecs, out = eng.theta0, None, []
    G_all = eng.gamma(list(range(steps)))
    for t in range(steps):
        if spectra and t % EVERY in (0, 1):
            res = top_k(eng, theta, t, 2, v0=vecs, tol=1e-3, salt=t)
            vecs = res.block
            out.append(res.eigvals)
        theta, m = eng.step(theta, t, G_all[t])
        out.append(m)
    np.asarray(theta)  # the results reach the host, as the recorder's flush does
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--replicas", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(str(ROOT / "data" / "digits.npz"))
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}, float64, digits CNN (838 parameters), P = {len(data.y)}, "
        f"{args.steps} steps, {args.repeats} repeats"
    )
    plain_loop(data, 5, True)
    engine_loop(data, 2, 5, True)  # warm up code paths
    ratios: dict[tuple, list[float]] = {}
    rates: dict[tuple, list[float]] = {}
    for _ in range(args.repeats):
        for spectra in (False, True):
            base = args.steps / timed(plain_loop, data, args.steps, spectra)
            rates.setdefault(("plain", 1, spectra), []).append(base)
            for R in args.replicas:
                r = R * args.steps / timed(engine_loop, data, R, args.steps, spectra)
                rates.setdefault(("engine", R, spectra), []).append(r)
                ratios.setdefault((R, spectra), []).append(r / base)
    print(
        "| runner | R | spectra (t, t+1) every 50 | run-steps/s (median) | × plain loop, min / median / max "
        "| peak RSS |"
    )
    print("|---|---:|:---:|---:|---:|---:|")
    for spectra in (False, True):
        mb = peak_mb(plain_loop, data, args.steps, spectra, threads=args.threads)
        med = statistics.median(rates[("plain", 1, spectra)])
        print(f"| plain loop | 1 | {'yes' if spectra else 'no'} | {med:,.1f} | 1 | {mb:,.0f} MB |")
        for R in args.replicas:
            mb = peak_mb(engine_loop, data, R, args.steps, spectra, threads=args.threads)
            med = statistics.median(rates[("engine", R, spectra)])
            print(
                f"| engine | {R} | {'yes' if spectra else 'no'} | {med:,.1f} | {spread(ratios[(R, spectra)])} | "
                f"{mb:,.0f} MB |"
            )


if __name__ == "__main__":
    main()
