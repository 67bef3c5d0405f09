"""The fused CPU kernel (`--step fused`): fused_step.cpp built for this problem and called through ctypes.

The torch step is bound by memory traffic and per-operation overhead, not arithmetic: every
replica's (width × P) activations go through DRAM several times a step. The fused loop keeps
a block of points' activations in L1 from the forward pass to the weight gradient, so a step
costs what its arithmetic costs. The source is compiled once per (dtype, input dim, classes,
activation, loss) with the machine's C++ compiler (-O3 -march=native) into a cache folder
(`$LANDSCAPE_CACHE`, default `~/.cache/landscape`); no build step at install time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from landscape import LandscapeError
from landscape.dynamics.iterates import Tracker
from landscape.problem.losses import LOSSES
from landscape.problem.mlp import FUSED_ACTIVATIONS, fused_refusal

SOURCE = Path(__file__).with_name("fused_step.cpp")
NV = 2  # vectors of points per block (8 doubles or 16 floats a vector)
_CTYPES = {torch.float64: ("double", ctypes.c_double), torch.float32: ("float", ctypes.c_float)}
_loaded: dict[tuple, ctypes.CDLL] = {}


def compiler() -> str | None:
    """The C++ compiler to use: $CXX, else c++, g++ or clang++ on PATH."""
    for name in (os.environ.get("CXX"), "c++", "g++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def cache_dir() -> Path:
    return Path(os.environ.get("LANDSCAPE_CACHE") or Path.home() / ".cache" / "landscape") / "fused"


def _cpu() -> str:
    """What -march=native depends on: the CPU's instruction-set flags, so a cache folder shared
    between machines (a network home) never hands one machine another's build."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.machine() + platform.processor()


@functools.lru_cache(maxsize=1)
def vector_math() -> bool:
    """Whether glibc's vector math library (libmvec: exp, log, tanh a vector at a time) is on
    this machine; the build links it when so, and falls back to the scalar functions if that fails."""
    return ctypes.util.find_library("mvec") is not None


def _build(key: tuple, source: Path = SOURCE) -> Path:
    dtype, d, C, act, loss, mvec = key
    cxx = compiler()
    if cxx is None:
        raise LandscapeError("--step fused needs a C++ compiler (c++, g++ or clang++ on PATH, or $CXX)")
    flags = [
        "-O3",
        "-march=native",
        "-std=c++17",
        "-fno-math-errno",
        "-shared",
        "-fPIC",
        f"-DT={_CTYPES[dtype][0]}",
        f"-DD={d}",
        f"-DNC={C}",
        f"-DACT={act}",
        f"-DLOSS={loss}",
        f"-DNV={NV}",
        *(["-DLANDSCAPE_MVEC"] if mvec else []),
    ]
    libs = ["-lmvec"] if mvec else []
    src = source.read_bytes() + (SOURCE.read_bytes() if source != SOURCE else b"")  # and what it includes
    tag = hashlib.sha256(src + " ".join([cxx, *flags, *libs, _cpu()]).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    folders = [cache_dir(), Path(tempfile.gettempdir()) / f"landscape-fused-{uid}"]
    for folder in folders:  # a read-only home: this machine's temporary folder instead
        out = folder / f"{source.stem}-{tag}.so"
        if out.exists():
            return out
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = tempfile.TemporaryDirectory(dir=folder)
            break
        except OSError:
            if folder is folders[-1]:
                raise
    with probe as tmp:
        part = Path(tmp) / out.name
        res = subprocess.run([cxx, *flags, str(source), "-o", str(part), *libs], capture_output=True, text=True)
        if res.returncode != 0:
            msg = (res.stderr.strip().splitlines() or ["no message"])[0]
            raise LandscapeError(f"building the fused step failed ({cxx}): {msg}; choose another compiler with CXX=…")
        if not part.is_file():  # a "compiler" that exits 0 and makes nothing (CXX=true)
            raise LandscapeError(
                f"building the fused step failed: the compiler '{cxx}' exited without writing the library; "
                "choose a C++ compiler with CXX=… (e.g. CXX=g++)"
            )
        os.replace(part, out)  # atomic: a concurrent build of the same key writes the same file
    return out


def library(key: tuple, source: Path = SOURCE) -> ctypes.CDLL:
    """`source` built for key (dtype, d, C, activation, loss, with libmvec) and loaded, once per
    process; a libmvec build that fails is built again without it."""
    if (key, source) not in _loaded:
        try:
            path = _build(key, source)
        except LandscapeError:
            if not key[-1]:
                raise
            _loaded[key, source] = library(key[:-1] + (False,), source)
            return _loaded[key, source]
        _loaded[key, source] = ctypes.CDLL(str(path))
    return _loaded[key, source]


def _library(key: tuple) -> ctypes.CDLL:
    """The built step for key, its entry points typed."""
    lib = library(key)
    if not getattr(lib, "typed", False):  # on the library itself: a test may empty the cache
        common = [ctypes.c_int] * 5 + [ctypes.c_void_p] * 6
        lib.landscape_fused_hvp.restype = lib.landscape_fused_steps.restype = ctypes.c_int
        lib.landscape_fused_hvp.argtypes = common
        lib.landscape_fused_steps.argtypes = (
            [*common, ctypes.c_int] + [ctypes.c_void_p] * 3  # + the signals
            + [ctypes.c_int] + [ctypes.c_void_p] * 3 + [ctypes.c_longlong]  # + the optimizer
        )  # fmt: skip
        lib.landscape_fused_forward.restype = ctypes.c_int
        lib.landscape_fused_forward.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 5
        lib.landscape_fused_accuracy.restype = ctypes.c_int
        lib.landscape_fused_accuracy.argtypes = [ctypes.c_int] * 4 + [ctypes.c_void_p] * 4
        lib.landscape_lane_math.restype = ctypes.c_int
        lib.landscape_lane_math.argtypes = [ctypes.c_int] * 2 + [ctypes.c_void_p] * 2
        setattr(lib, "typed", True)  # noqa: B010 (CDLL declares no such attribute)
    return lib


class Threaded:
    """Rows (replicas, grid points) split over torch's threads, one C call per range."""

    _pool: ThreadPoolExecutor | None = None
    _workers = 0

    def _chunks(self, R: int) -> list[tuple[int, int]]:
        """Replica ranges, one per thread (torch's thread count, `--threads`): the replicas are
        independent, so the result is the same bit for bit whatever the split (tested)."""
        n = max(1, min(torch.get_num_threads(), R))
        cuts = [R * i // n for i in range(n + 1)]
        return list(zip(cuts[:-1], cuts[1:]))

    def _run(self, fn, chunks) -> None:
        """fn(r0, r1) for every chunk; ctypes releases the GIL, so threads run the C loops in parallel."""
        if len(chunks) == 1:
            return fn(*chunks[0])
        if self._pool is None or self._workers < len(chunks):
            self._pool, self._workers = ThreadPoolExecutor(len(chunks)), len(chunks)
        for f in [self._pool.submit(fn, *c) for c in chunks]:
            f.result()


class FusedKernel(Threaded):
    """S gradient-descent steps of R replicas of the one-hidden-layer MLP, and their
    Hessian-vector products.

    Built for one dataset (X (P, d), labels y), loss, activation and dtype. Bit-identical
    however the steps are cut and whichever replicas share a batch; within rounding of the
    torch step (the sums run in another order)."""

    def __init__(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        C: int,
        width: int,
        loss: str,
        activation: str,
        X_val: torch.Tensor | None = None,
        y_val: torch.Tensor | None = None,
    ):
        if why := fused_refusal(1, X.device, X.dtype):
            raise LandscapeError(why)
        if activation not in FUSED_ACTIVATIONS:
            raise LandscapeError(f"--step fused supports {', '.join(FUSED_ACTIVATIONS)}, not {activation}")
        self.dtype, self.width, self.C = X.dtype, width, C
        self.d = X.shape[1]
        self.train = _Points(X, y)
        self.val = None if X_val is None or y_val is None else _Points(X_val, y_val)
        key = (X.dtype, self.d, C, ("relu", "tanh").index(activation), LOSSES.index(loss), vector_math())
        lib = self._lib = _library(key)
        self._fn, self._hvp = lib.landscape_fused_steps, lib.landscape_fused_hvp
        self._acc = lib.landscape_fused_accuracy
        self._fwd = lib.landscape_fused_forward
        self.num_params = self.d * width + width + width * C + C

    def __call__(
        self,
        theta: torch.Tensor,
        G: torch.Tensor,
        eta: torch.Tensor,
        track: Tracker | None = None,
        opt: Optimizer | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """θ (R, n) after the S steps of Γ G (S, R, C), and (S, 3, R) metrics: F, static loss and
        training accuracy at θ before each step. θ is not modified. With `track`, the steps'
        iterate signals are computed in the loop and handed to it; with `opt`, another optimizer
        than gradient descent, its state buffers advanced in place."""
        S, R, C = G.shape
        if theta.shape != (R, self.num_params) or C != self.C:
            raise ValueError(f"fused step: θ {tuple(theta.shape)}, Γ {tuple(G.shape)} do not fit this network")
        out = theta.to(self.dtype).contiguous().clone()
        G = G.to(self.dtype).contiguous()
        eta = eta.to(self.dtype).contiguous()
        chunks = self._chunks(R)
        parts = [torch.empty((S, 3, r1 - r0), dtype=self.dtype) for r0, r1 in chunks]
        K = 0
        U = state = torch.empty(0, dtype=self.dtype)
        if track is not None:  # the tracker's own (R, 2, n) state, updated in place by the loop
            U, state = track.U, track.state
            if U.dtype != self.dtype or state.dtype != self.dtype or not state.is_contiguous():
                raise ValueError("fused step: the tracker's state must be contiguous and of the step's dtype")
            K = U.shape[0]
            if K > 16:
                raise ValueError("fused step: at most 16 projection directions (KMAX of fused_step.cpp)")
        sigs = [torch.empty((S, 3 + K, r1 - r0), dtype=self.dtype) for r0, r1 in chunks] if K else []

        if opt is not None:
            opt.check(R, self.num_params, self.dtype)

        def run(r0: int, r1: int) -> None:
            g = G if r1 - r0 == R else G[:, r0:r1].contiguous()
            i = chunks.index((r0, r1))
            tr = (K, _ptr(U), _ptr(state[r0:r1]), _ptr(sigs[i])) if K else (0, None, None, None)
            op = opt.args(r0, r1) if opt is not None else (0, None, None, None, 0)
            rc = self._fn(S, r1 - r0, self.width, *self.train.args, _ptr(g), _ptr(eta[r0:r1]),
                          _ptr(out[r0:r1]), _ptr(parts[i]), *tr, *op)  # fmt: skip
            if rc != 0:
                raise MemoryError("fused step: out of memory for its accumulators")

        self._run(run, chunks)
        if track is not None:
            sig = sigs[0] if len(sigs) == 1 else torch.cat(sigs, dim=2)
            track.extend(sig[:, :3].transpose(1, 2), sig[:, 3:].transpose(1, 2), out)
        return out, parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)

    def hvp(self, theta: torch.Tensor, G: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        """H V (R, b, n): replica r's Hessian of F at θ_r (R, n) with Γ G (R, C) applied to its
        b vectors V (R, b, n); the R-operator of derivatives.hvp, one pass over the points."""
        R, b, n = V.shape
        if theta.shape != (R, self.num_params) or n != self.num_params or G.shape != (R, self.C):
            raise ValueError(f"fused HVP: θ {tuple(theta.shape)}, Γ {tuple(G.shape)}, V {tuple(V.shape)} do not fit")
        theta, G, V = (a.to(self.dtype).contiguous() for a in (theta, G, V))
        out = torch.empty_like(V)

        def run(r0: int, r1: int) -> None:
            rc = self._hvp(r1 - r0, b, self.width, *self.train.args, _ptr(G[r0:r1]), _ptr(theta[r0:r1]),
                           _ptr(V[r0:r1]), _ptr(out[r0:r1]))  # fmt: skip
            if rc != 0:
                raise MemoryError("fused HVP: out of memory for its accumulators")

        self._run(run, self._chunks(R))
        return out

    def forward(self, theta: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
        """(3, R): F, the static loss and the training accuracy at each row of θ (R, n) with its
        Γ G (R, C), from the forward pass alone (the training step's sums, without its backward):
        the grid points of a loss-landscape view, every row in one call per thread."""
        R = theta.shape[0]
        if theta.shape != (R, self.num_params) or G.shape != (R, self.C):
            raise ValueError(f"fused forward: θ {tuple(theta.shape)}, Γ {tuple(G.shape)} do not fit this network")
        theta, G = theta.to(self.dtype).contiguous(), G.to(self.dtype).contiguous()
        out = torch.empty((3, R), dtype=self.dtype)
        parts = {c: torch.empty((3, c[1] - c[0]), dtype=self.dtype) for c in self._chunks(R)}

        def run(r0: int, r1: int) -> None:
            part = parts[(r0, r1)]
            self._fwd(r1 - r0, self.width, *self.train.args, _ptr(G[r0:r1]), _ptr(theta[r0:r1]), _ptr(part))
            out[:, r0:r1] = part

        self._run(run, list(parts))
        return out

    def accuracy(self, theta: torch.Tensor, val: bool = False) -> torch.Tensor:
        """(R,) the fraction of the training (or, with val, validation) points each replica classifies right
        (NaN for a replica whose θ is not finite)."""
        maybe = self.val if val else self.train
        if maybe is None:
            raise ValueError("fused accuracy: no validation points")
        pts = maybe
        theta = theta.to(self.dtype).contiguous()
        out = torch.empty(theta.shape[0], dtype=self.dtype)

        def run(r0: int, r1: int) -> None:
            self._acc(r1 - r0, self.width, *pts.args, _ptr(theta[r0:r1]), _ptr(out[r0:r1]))

        self._run(run, self._chunks(theta.shape[0]))
        return out  # NaN for a replica whose θ is not finite (the kernel checks)


@dataclass
class Optimizer:
    """Another optimizer than gradient descent, as the C loop takes it: its code (`CODES`), the
    per-replica hyper-parameters (R, 3) (β | α, 0, ε | β1, β2, ε), its one or two state buffers
    (R, n), contiguous, updated in place, and the number of updates done before these steps."""

    code: int
    hyper: torch.Tensor
    s1: torch.Tensor
    s2: torch.Tensor | None
    done: int

    def check(self, R: int, n: int, dtype) -> None:
        for a in (self.s1, self.s2):
            if a is not None and (a.shape != (R, n) or a.dtype != dtype or not a.is_contiguous()):
                raise ValueError("fused step: the optimizer's state must be (R, n), contiguous, of the step's dtype")
        if self.hyper.shape != (R, 3) or self.hyper.dtype != dtype or not self.hyper.is_contiguous():
            raise ValueError("fused step: the optimizer's hyper-parameters must be (R, 3) of the step's dtype")

    def args(self, r0: int, r1: int) -> tuple:
        s2 = None if self.s2 is None else _ptr(self.s2[r0:r1])
        return (self.code, _ptr(self.hyper[r0:r1]), _ptr(self.s1[r0:r1]), s2, self.done)


CODES = {"gd": 0, "momentum": 1, "nesterov": 2, "rmsprop": 3, "adam": 4}  # adam without bias correction: 5


def _ptr(t: torch.Tensor) -> ctypes.c_void_p:
    return ctypes.c_void_p(t.data_ptr())


class _Points:
    """A point set as the C loops read it: inputs feature-major (d, Pp) and int32 labels (Pp,),
    zero-padded to Pp, a multiple of the block (the padded points are skipped)."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.P, d = X.shape
        block = NV * 64 // X.element_size()
        self.Pp = -(-self.P // block) * block
        self.XT = torch.zeros((d, self.Pp), dtype=X.dtype)
        self.XT[:, : self.P] = X.t()
        self.y = torch.zeros(self.Pp, dtype=torch.int32)
        self.y[: self.P] = y.to(torch.int32)
        self.args = (self.P, self.Pp, _ptr(self.XT), _ptr(self.y))  # as the C loops take them
