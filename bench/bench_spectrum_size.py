"""Where the whole spectrum is cheaper than the Krylov estimators: `--density-method auto`'s
threshold (`landscape.config.run.DENSE_SPECTRUM_BELOW`).

For each network size n (the spiral's one-hidden-layer ReLU MLP, widths giving n = 6w + 3),
three runners on the same θ (100 steps of DCE) and operator (the fused R-operator where it
builds, else the eager one), one thread, interleaved in every repeat:

- `dense`: n Hessian-vector products on the identity and `eigvalsh` (`landscape.curvature.dense`):
  every eigenvalue, exactly — the density, trace, λ_min and top-k all follow;
- `slq`: stochastic Lanczos quadrature, M Lanczos steps from V vectors (the density alone, with
  sampling error);
- `top-2`: the block Lanczos top-2 at the recorder's tolerance 1e-3, cold (what every spectrum
  step pays anyway).

Ratio = the runner's time ÷ dense's, per repeat (> 1: dense is faster).

    python bench/bench_spectrum_size.py --widths 10 25 50 100 170 250 400 --M 80 --V 8 --repeats 5
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch
from harness import Table, interleaved, ratios, spread, threads_line

from landscape.config.run import RunConfig
from landscape.curvature import dense
from landscape.curvature.density import slq
from landscape.curvature.spectrum import top_k
from landscape.machine.perf import keep_freed_memory
from landscape.recorders.record import prepare


def runners_for(eng, theta, G, M: int, V: int) -> dict:
    """The three ways to the spectrum's information at θ (R = 1)."""
    n = eng.num_params

    def op_of(rows):
        return eng.hvp_block(theta[rows], 100, G[rows])

    return {
        "dense": lambda: dense.spectrum(op_of, 1, n, theta.dtype, "cpu"),
        "slq": lambda: slq(eng.hvp_block(theta, 100, G), [0], n, M, V, salt=100, dtype=theta.dtype),
        "top-2": lambda: top_k(eng, theta, 100, 2, tol=1e-3, seeds=[0], G=G),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[10, 25, 50, 100, 170, 250, 400])
    ap.add_argument("--M", type=int, default=80)
    ap.add_argument("--V", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the table here (bench/tables.py puts it in the docs)")
    a = ap.parse_args()
    table = Table(
        "spectrum_size",
        ["n", "dense (s, median)", "SLQ ÷ dense (min / med / max)", "top-2 ÷ dense (min / med / max)"],
        note=f"R = 1, SLQ M = {a.M}, V = {a.V}, top-2 cold at tolerance 1e-3; {a.repeats} interleaved repeats.",
    )
    torch.set_num_threads(1)
    keep_freed_memory()
    print(f"# bench_spectrum_size: R = 1, SLQ M = {a.M}, V = {a.V}; {threads_line()}")
    print(f"{'n':>6} {'dense s':>9} {'slq ÷ dense (min / med / max)':>31} {'top-2 ÷ dense':>22}")
    for w in a.widths:
        cfg = RunConfig(loss="dce", etas=(1.0,), width=w, steps=100, step="fused")
        try:
            eng = prepare(cfg).engine
        except Exception:  # no C++ compiler: the eager operator
            eng = prepare(RunConfig(loss="dce", etas=(1.0,), width=w, steps=100)).engine
        theta = eng.advance(eng.init([0]), 0, 100)
        G = eng.gamma(100)
        n = eng.num_params
        M = min(a.M, n)

        runners = runners_for(eng, theta, G, M, a.V)
        times = interleaved(runners, a.repeats)
        rel = ratios(times, "dense")
        inv = {k: [1 / r for r in v] for k, v in rel.items()}  # runner time ÷ dense time
        med = sorted(times["dense"])[len(times["dense"]) // 2]
        print(f"{n:>6} {med:>9.4f} {spread(inv['slq']):>31} {spread(inv['top-2']):>22}")
        table.add([f"{n:,}", f"{med:.4f}", spread(inv["slq"]), spread(inv["top-2"])], seconds=times)
    if a.json:
        print(f"table written to {table.save(a.json)}")


if __name__ == "__main__":
    main()
