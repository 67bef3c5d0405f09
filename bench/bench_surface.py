"""A 2-D loss surface around a trained θ: the engine's batched evaluation (`analyze surface`)
against the plain way loss-landscape computes one (a Python loop over the grid points: set the
module's parameters to θ + a·d1 + b·d2, one forward pass of the whole dataset, the loss).

Both evaluate the same grid of the same directions from the same θ, in one process,
interleaved per repeat; the ratio is per repeat (plain time / engine time); peak resident
memory beyond the start of each runner beside it. Networks: the reference MLP (spiral, width
100, 603 parameters; θ of the shipped run at t = 9000) and the digits CNN (examples/cnn.py,
1000 images; θ after 50 steps of DCE).

    python bench/bench_surface.py --grid 51 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch
from harness import ROOT, interleaved, ratios, recording, spread, threads_line
from torch.func import functional_call

import landscape
from landscape.analysis.surfaces import _evaluate, random_directions
from landscape.problem import losses
from landscape.runs.opened import Run


def plain_loop(module, names, shapes, eng, G, theta, D, coef):
    """loss-landscape's way: at each grid point the parameters are set, then one forward of the
    training set gives the loss and accuracy and one of the validation set its accuracy (its
    `crunch` with a test loader): F_t, the static loss and both accuracies, as the engine."""
    out = np.empty((coef.shape[0], 4))
    th0, Dt = torch.as_tensor(theta), torch.as_tensor(D)
    sizes = [int(np.prod(s)) for s in shapes]
    with torch.no_grad():
        for i, c in enumerate(coef):
            th = th0 + torch.as_tensor(c) @ Dt
            params, off = {}, 0
            for n, s, k in zip(names, shapes, sizes):
                params[n] = th[off : off + k].reshape(s)
                off += k
            f = functional_call(module, params, (eng.X,))[None]
            fv = functional_call(module, params, (eng.Xv,))
            out[i] = (
                float(losses.loss(eng.loss_name, f, eng.y, eng.Y, G)[0]),
                float(losses.loss(eng.static_name, f, eng.y, eng.Y, G)[0]),
                float((f[0].argmax(-1) == eng.y).double().mean()),
                float((fv.argmax(-1) == eng.yv).double().mean()),
            )
    return out


def mlp_module(width: int):
    return torch.nn.Sequential(torch.nn.Linear(2, width), torch.nn.ReLU(), torch.nn.Linear(width, 3)).double()


def problems(tmp: str):
    """(name, run, replica, step, module, names, shapes in θ's layout → module layout)"""
    run = Run.open(ROOT / "data" / "dce_w100_A70_T5000.zarr")
    yield "MLP width 100 (603 parameters, 300 points)", run, 0, 9000, "mlp"
    cfg = landscape.RunConfig(
        model=str(ROOT / "examples" / "cnn.py") + ":make", data=str(ROOT / "data" / "digits.npz"), loss="dce",
        etas=(0.5,), amplitudes=(10.0,), periods=(400,), steps=50, hessian_every=50, save_params_every=50,
        chunk_steps=50,
    )  # fmt: skip
    path = landscape.record(cfg, tmp + "/cnn.zarr")
    yield "digits CNN (1,038 parameters, 1,000 images)", Run.open(path), 0, 49, "cnn"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=51)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=None, help="grid points per batch [default: the engine's own]")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(threads_line(), f"; grid {args.grid} × {args.grid}; {args.repeats} repeats")
    with tempfile.TemporaryDirectory() as tmp:
        for problem in problems(tmp):
            measure(*problem, args)


def measure(name, run, r, t, kind, args):
    """One network: the two runners interleaved, their ratio, memory and agreement."""
    eng = run.engine([r])
    theta = run.params_at([t], [r])[0, 0]
    D = random_directions(eng, theta, seed=0, k=2)
    a = np.linspace(-1, 1, args.grid)
    coef = np.stack([g.ravel() for g in np.meshgrid(a, a, indexing="ij")], axis=1)
    G = eng.gamma(t)[:1]
    if kind == "mlp":  # the module's layout: W (out, in); θ holds W (in, out)
        module = mlp_module(eng.spec.width)
        order = [("0.weight", True), ("0.bias", False), ("2.weight", True), ("2.bias", False)]
        perm, off = [], 0
        for (_, shape), (_, tr) in zip(eng.param_map(), order):
            k = int(np.prod(shape))
            idx = np.arange(off, off + k).reshape(shape)
            perm.append((idx.T if tr else idx).ravel())
            off += k
        perm = np.concatenate(perm)
        names = [n for n, _ in order]
        shapes = [tuple(p.shape) for p in module.parameters()]
        th_m, D_m = theta[perm], D[:, perm]
    else:
        module = run.engine([r]).make(0)
        names, shapes = eng.names, eng.shapes
        th_m, D_m = theta, D
    results, peaks = {}, {}

    def engine_run():
        res = _evaluate(eng, theta, D, coef, t, args.batch)
        return np.stack([res[k] for k in ("loss", "loss_static", "train_acc", "val_acc")], axis=1)

    runners = {"plain loop": lambda: plain_loop(module, names, shapes, eng, G, th_m, D_m, coef), "engine": engine_run}
    times = interleaved(recording(runners, results, peaks), args.repeats)
    plain = results["plain loop"]
    agree = np.max(np.abs(results["engine"] - plain) / np.maximum(np.abs(plain), 1e-300))
    r_ = ratios(times, "plain loop")["engine"]
    print(
        f"{name}: plain {spread(times['plain loop'])} s, engine {spread(times['engine'], 3)} s; "
        f"engine / plain speed (min / median / max) {spread(r_, 1)}×; peak MB plain {peaks['plain loop']:.0f}, "
        f"engine {peaks['engine']:.0f}; largest relative difference {agree:.1e}"
    )


if __name__ == "__main__":
    main()
