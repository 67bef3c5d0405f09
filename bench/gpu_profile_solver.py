"""A profile, not a benchmark: where one warm-started top-2 spectrum's time goes on a GPU
(random blocks, orthonormalisation, eigh, QR, the HVP and its cache) for R = 64 and 4096, and
a step's time beside it. It compares nothing, so it takes no baseline; the speed tables come
from the benchmarks on `harness.py`.

    python bench/gpu_profile_solver.py   # needs a CUDA GPU
"""

import collections
import time

import torch

import landscape.curvature.eigen as eigen
from landscape.curvature.spectrum import top_k
from landscape.engines.mlp import MLPEngine
from landscape.problem.data import spiral_dataset
from landscape.problem.mlp import MLPSpec

acc = collections.defaultdict(float)


def timed(name, f):
    def g(*a, **k):
        torch.cuda.synchronize()
        t = time.perf_counter()
        r = f(*a, **k)
        torch.cuda.synchronize()
        acc[name] += time.perf_counter() - t
        return r

    return g


eigen.random_block = timed("random_block", eigen.random_block)
eigen._orthonormal_block = timed("orthonormal_block", eigen._orthonormal_block)
torch.linalg.eigh = timed("eigh", torch.linalg.eigh)
torch.linalg.qr = timed("qr", torch.linalg.qr)
data = spiral_dataset(100, seed=0, val_seed=1)
spec = MLPSpec(2, 100, 3)
for R in (64, 4096):
    eng = MLPEngine(spec, data, "dce", [1.0] * R, [70.0] * R, [5000] * R, device="cuda")
    th = eng.advance(spec.init(range(R), device="cuda"), 0, 200)
    warm = top_k(eng, th, 200, 2, tol=1e-3).block
    op0 = eng.hvp_block

    def hb(theta, t, G=None, op0=op0):
        op = timed("cache", op0)(theta, t, G)
        return timed("hvp", op)

    eng.hvp_block = hb
    acc.clear()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(5):
        res = top_k(eng, th, 201, 2, v0=warm, tol=1e-3, salt=i)
    torch.cuda.synchronize()
    tot = time.perf_counter() - t0
    print(
        R,
        f"total per solve {tot/5*1e3:.1f} ms",
        {k: f"{v/5*1e3:.1f}" for k, v in acc.items()},
        "products",
        res.iterations,
    )
    t0 = time.perf_counter()
    for _ in range(20):
        th2, _ = eng.step(th, 201)
    torch.cuda.synchronize()
    print("step ms", (time.perf_counter() - t0) / 20 * 1e3)
    print(torch.cuda.max_memory_allocated() / 2**30, "GiB")
