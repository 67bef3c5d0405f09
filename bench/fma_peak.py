"""This CPU's fused multiply-add peak on one thread: what a GFLOP/s of the engine is a fraction of.

A large torch.mm reaches only part of the peak on some machines (≈ 45 % on the 2-core CPU of
docs/performance.md), so a fraction of "GEMM speed" can pass 100 %. The probe here is the
arithmetic's own limit: a C++ loop of 12 independent FMA chains on the widest vectors
`-march=native` gives (GCC/Clang vector extensions; `a = a * b + c` contracts to one FMA),
built with the same compiler as the fused step, timed best of five.

    python bench/fma_peak.py
"""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import time
from pathlib import Path

from landscape.engines.fused import compiler

SOURCE = r"""
#include <cstdint>
template <typename T, int W>
static double run(int64_t iters) {
    typedef T v __attribute__((vector_size(W)));
    constexpr int L = W / sizeof(T), K = 12;
    v a[K], b, c;
    for (int l = 0; l < L; ++l) { b[l] = T(0.999999); c[l] = T(1e-7); }
    for (int k = 0; k < K; ++k) for (int l = 0; l < L; ++l) a[k][l] = T(k + 1);
    for (int64_t i = 0; i < iters; ++i)
        for (int k = 0; k < K; ++k) a[k] = a[k] * b + c;
    double s = 0;
    for (int k = 0; k < K; ++k) for (int l = 0; l < L; ++l) s += a[k][l];
    return s;
}
extern "C" double fma64(int64_t iters, int width) {
    return width == 64 ? run<double, 64>(iters) : width == 32 ? run<double, 32>(iters) : run<double, 16>(iters);
}
extern "C" double fma32(int64_t iters, int width) {
    return width == 64 ? run<float, 64>(iters) : width == 32 ? run<float, 32>(iters) : run<float, 16>(iters);
}
"""


def build() -> ctypes.CDLL:
    cxx = compiler()
    if cxx is None:
        raise SystemExit("no C++ compiler (c++, g++, clang++ or $CXX)")
    tmp = Path(tempfile.mkdtemp())
    (tmp / "fma.cpp").write_text(SOURCE)
    out = tmp / "fma.so"
    subprocess.run([cxx, "-O3", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC", str(tmp / "fma.cpp"),
                    "-o", str(out)], check=True)  # fmt: skip
    lib = ctypes.CDLL(str(out))
    for f in (lib.fma64, lib.fma32):
        f.restype, f.argtypes = ctypes.c_double, [ctypes.c_int64, ctypes.c_int]
    return lib


def peak(dtype: str = "float64", iters: int = 20_000_000) -> tuple[float, int]:
    """(GFLOP/s, vector bytes): the best over the vector widths the compiler accepts, best of five."""
    lib = build()
    fn, size = (lib.fma64, 8) if dtype == "float64" else (lib.fma32, 4)
    best, width = 0.0, 16
    for w in (16, 32, 64):
        for _ in range(5):
            t0 = time.perf_counter()
            fn(iters, w)
            rate = 2 * 12 * (w // size) * iters / (time.perf_counter() - t0) / 1e9
            if rate > best:
                best, width = rate, w
    return best, width


if __name__ == "__main__":
    for dt in ("float64", "float32"):
        gf, w = peak(dt)
        print(f"{dt}: {gf:.1f} GFLOP/s on one thread (FMA chains on {w * 8}-bit vectors)")
