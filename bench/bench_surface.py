"""A 2-D loss surface around a trained θ: the engine's batched evaluation (`analyze surface`)
against the plain way loss-landscape computes one (a Python loop over the grid points: set the
module's parameters to θ + a·d1 + b·d2, one forward pass of the whole dataset, the loss).

All evaluate the same grid of the same directions from the same θ (the engine also in float32,
`--dtype float32`), in one process, interleaved per repeat; the ratio is per repeat (plain
time / engine time); peak resident memory beyond the start of each runner beside it. Networks:
the reference MLP (spiral, width 100, 603 parameters; θ of the shipped run at t = 9000) and the
digits CNN (examples/cnn.py, 1000 images; θ after 50 steps of DCE).

    python bench/bench_surface.py --grid 51 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch
from harness import ROOT, Table, interleaved, ratios, recording, spread, threads_line
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
    ap.add_argument("--json", default=None, help="also write the table here (bench/tables.py puts it in the docs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(threads_line(), f"; grid {args.grid} × {args.grid}; {args.repeats} repeats")
    table = Table(
        "surface",
        ["network", "runner", "seconds, min / median / max", "× the plain loop, min / **median** / max", "peak MB",
         "losses' largest relative difference", "points classified as the loop does"],
        note=f"A {args.grid} × {args.grid} filter-normalised surface, {args.repeats} interleaved repeats, "
        "θ and directions the same for every runner.",
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for problem in problems(tmp):
            measure(*problem, args, table)
    if args.json:
        print(f"table written to {table.save(args.json)}")


def measure(name, run, r, t, kind, args, table):
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

    eng32 = run.engine([r], dtype="float32")
    for e in (eng, eng32):  # the engines' one-time work (a C kernel's build and check) before the timing
        e.evaluation_batch(1)
    sizes = np.array([eng.X.shape[0], eng.Xv.shape[0]])  # training and validation points

    def engine_run(e):
        res = _evaluate(e, theta, D, coef, t, args.batch)
        return np.stack([res[k] for k in ("loss", "loss_static", "train_acc", "val_acc")], axis=1)

    runners = {
        "plain loop": lambda: plain_loop(module, names, shapes, eng, G, th_m, D_m, coef),
        "engine": lambda: engine_run(eng),
        "engine float32": lambda: engine_run(eng32),
    }
    times = interleaved(recording(runners, results, peaks), args.repeats)
    plain = results["plain loop"]
    r_ = ratios(times, "plain loop")
    print(f"{name}: plain loop {spread(times['plain loop'])} s, peak MB {peaks['plain loop']:.0f}")
    table.add([name, "plain loop", spread(times["plain loop"]), "1", f"{peaks['plain loop']:.0f}", "", ""],
              seconds=times["plain loop"], peak_mb=peaks["plain loop"])  # fmt: skip
    for k in ("engine", "engine float32"):
        loss = np.abs(results[k][:, :2] - plain[:, :2]) / np.abs(plain[:, :2])
        alike = np.mean(np.round(results[k][:, 2:] * sizes) == np.round(plain[:, 2:] * sizes))
        print(
            f"  {k}: {spread(times[k], 3)} s; speed over the plain loop (min / median / max) {spread(r_[k], 1)}×; "
            f"peak MB {peaks[k]:.0f}; losses' largest relative difference {loss.max():.1e}, "
            f"points classified as the loop does: {alike:.1%}"
        )
        rs = spread(r_[k], 1).split(" / ")
        table.add(
            ["", f"`analyze surface`{' --dtype float32' if '32' in k else ''}", spread(times[k], 3),
             f"{rs[0]} / **{rs[1]}** / {rs[2]}×", f"{peaks[k]:.0f}", f"{loss.max():.1e}", f"{alike:.1%}"],
            seconds=times[k], ratio=r_[k], peak_mb=peaks[k], largest_relative_difference=float(loss.max()),
        )  # fmt: skip


if __name__ == "__main__":
    main()
