"""Top-k Hessian eigenpairs of many independent operators at once (batched block Lanczos).

Each replica's Hessian is a separate operator, but one Hessian-vector product of the
summed loss applies all of them at once, so R block-Krylov recurrences run in
lockstep: (R, b, n) blocks, (R, m, m) Rayleigh–Ritz problems. Why not a library solver:
scipy's eigsh and lobpcg take a matrix-free operator but one at a time, in NumPy on the
CPU (R solves, a host round trip per product); torch.lobpcg takes batches, but of
explicit dense or sparse matrices only (forming an n × n Hessian per replica is what
the HVPs avoid), and it assumes a positive definite problem, which these Hessians are not.

Why a block, and why oversampling. A single warm-started Krylov space converges in a
few products to whatever eigenpairs the previous eigenvectors approximate: after two
eigenvalues cross, or when the previous v2 was really the next eigenvector, it returns
λ3 as "λ2" with a tiny residual (a residual only says that a pair is *an* eigenpair).
Here the start block is the k previous eigenvectors plus `oversample` fresh random
vectors (seeded per replica, so a replica gets the same answer alone or in a batch),
the block size k + p exceeds any multiplicity the top-k can have up to p, and the
stopping rule looks at all k + p Ritz values: the wanted k must have true residuals
≤ tol·|λ1| *and* every Ritz value of the block must have stopped moving (change over
the last block step ≤ tol·|λ1|). An eigenvalue the warm start missed enters through
the random columns and moves the Ritz values, so the solver cannot stop on it.

Per-replica masking: a replica whose pairs have converged leaves the batch, so one
slow replica does not make all the others pay its products. Full reorthogonalisation
(twice) keeps the basis honest; the products H Q are kept, so true residuals come free.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

try:  # scipy is optional (the plot extra): without it the dense path uses torch's eigh
    import scipy.linalg.lapack as _lapack
except ImportError:  # the tests set _lapack to None to run this path
    _lapack = None

# op(V, rows) -> H V: V (len(rows), b, n) holds blocks of the replicas `rows` (a long tensor)
BlockOp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class EigResult:
    """Top-k eigenpairs per replica, largest first, with their true residuals."""

    eigvals: torch.Tensor  # (R, k)
    eigvecs: torch.Tensor  # (R, k, n), unit norm, sign fixed (largest |entry| positive)
    residuals: torch.Tensor  # (R, k): ‖H v − λ v‖
    converged: torch.Tensor  # (R, k) bool: residual ≤ tol·|λ1| and the block's Ritz values settled
    iterations: int  # Hessian-vector products of the slowest replica
    products: torch.Tensor | None = None  # (R,) Hessian-vector products per replica
    block: torch.Tensor | None = None  # (R, k + p, n) all Ritz vectors of the block: the next warm start


def _norm(x: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
    """‖x‖ over the last dim: Tensor.norm's kernel without its Python wrapper (the solver's
    own per-call overhead is what a small problem pays)."""
    return torch.linalg.vector_norm(x, dim=-1, keepdim=keepdim)


def _fix_sign(V: torch.Tensor) -> torch.Tensor:
    idx = V.abs().argmax(dim=-1, keepdim=True)
    s = torch.sign(V.gather(-1, idx))
    return V * torch.where(s == 0, torch.ones_like(s), s)


_MASK = {k: (1 << (64 - k)) - 1 for k in (11, 27, 30, 31)}


def _splitmix64(x: torch.Tensor) -> torch.Tensor:
    """The splitmix64 finaliser on int64 tensors (wrapping arithmetic, logical shifts)."""
    x = x + (0x9E3779B97F4A7C15 - 2**64)
    x = (x ^ ((x >> 30) & _MASK[30])) * (0xBF58476D1CE4E5B9 - 2**64)
    x = (x ^ ((x >> 27) & _MASK[27])) * (0x94D049BB133111EB - 2**64)
    return x ^ ((x >> 31) & _MASK[31])


@functools.lru_cache(maxsize=16)
def _index_hashes(start: int, stop: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The seed-free half of `random_block`'s hashing (it depends on the indices only), kept
    for the next solve: hashing is most of a warm-started solve's own work at large n."""
    idx = torch.arange(start, stop, dtype=torch.int64, device=device)
    return _splitmix64(2 * idx), _splitmix64(2 * idx + 1)


def random_block(seeds: Sequence[int], count: int, n: int, salt: int, dtype, device, first: int = 0) -> torch.Tensor:
    """(R, count − first, n) standard normal vectors: columns first … count − 1 of a block that
    is a pure function of (replica seed, salt, index).

    Counter-based (splitmix64 hashes of the indices, then Box–Muller), so a replica gets
    the same vectors alone or in any batch, on the CPU and on a GPU alike, and R of them
    cost one vectorised pass instead of R generators; columns are the same whichever
    `first` they are asked from."""
    s = torch.as_tensor([int(v) for v in seeds], dtype=torch.int64, device=device)
    key = _splitmix64(s * 1_000_003 + int(salt) * 7_919)
    i1, i2 = _index_hashes(first * n, count * n, str(device))
    h1 = _splitmix64(key[:, None] ^ i1[None])
    h2 = _splitmix64(key[:, None] ^ i2[None])
    u1 = (((h1 >> 11) & _MASK[11]).to(torch.float64) + 0.5) / 2.0**53
    u2 = (((h2 >> 11) & _MASK[11]).to(torch.float64) + 0.5) / 2.0**53
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
    return z.view(len(seeds), count - first, n).to(dtype)


def _orthonormal_block(W: torch.Tensor, Q: torch.Tensor | None, fill: Callable[[int], torch.Tensor]) -> torch.Tensor:
    """Orthonormal rows spanning W ⟂ Q, column by column (Gram–Schmidt, twice: no batched
    QR, which is slow on GPUs for thousands of small problems); a column that W cannot
    supply (the Krylov space closed, or duplicate warm vectors) is replaced by a random
    one, also made ⟂ Q."""
    R, b, n = W.shape
    for attempt in range(3):
        cols: list[torch.Tensor] = []
        flags: list[torch.Tensor] = []
        for j in range(b):
            w = W[:, j]
            size = _norm(w)
            # against Q and the columns made so far, from the same w (classical Gram–Schmidt on
            # [Q; C]); Q is not copied into one basis with them: at 10⁶ parameters a copy per column
            bases = [B for B in (Q, torch.stack(cols, dim=1) if cols else None) if B is not None]
            for _ in range(2 if bases else 0):
                coef = [torch.bmm(B, w.unsqueeze(2)) for B in bases]
                for B, c in zip(bases, coef):
                    w = w - torch.bmm(c.transpose(1, 2), B).squeeze(1)
            nrm = _norm(w)
            flags.append(nrm <= 1e-10 * size.clamp_min(torch.finfo(W.dtype).tiny))
            cols.append(w / nrm.clamp_min(torch.finfo(W.dtype).tiny).unsqueeze(-1))
        out, bad = torch.stack(cols, dim=1), torch.stack(flags, dim=1)
        if attempt == 2 or not bool(bad.any()):
            return out
        W = torch.where(bad.unsqueeze(-1), fill(attempt), out)
    raise AssertionError("unreachable")


def topk_eigs(
    op: BlockOp,
    V0: torch.Tensor | None,
    k: int,
    *,
    seeds: Sequence[int],
    n: int | None = None,
    oversample: int = 1,
    tol: float = 1e-3,
    guard_tol: float | None = None,
    explore: float = 0.1,
    max_iter: int = 100,
    salt: int = 0,
    dtype=torch.float64,
    device="cpu",
) -> EigResult:
    """Largest-algebraic k eigenpairs of R symmetric operators by batched block Lanczos.

    op: see BlockOp. V0: (R, j, n) warm-start vectors, or None for a cold start: the
    previous `EigResult.block` (k eigenvectors and the oversampling guards), or just the
    k eigenvectors. Missing columns are random, from `seeds` (one per replica) and `salt`
    (e.g. the step); a carried guard gets `explore` × a fresh random vector added, so the
    search for eigenvalues the warm start does not know about never stops.
    tol: the wanted residuals ≤ tol·|λ1|, and the wanted Ritz values moved ≤ tol·|λ1| in
    the last block step; the guards' Ritz values moved ≤ guard_tol·|λ1| (default 10·tol).
    At least two block steps are taken. max_iter: products per replica at most.
    """
    if V0 is not None:
        R, _, n = V0.shape
        dtype, device = V0.dtype, V0.device
    else:
        R = len(seeds)
    assert n is not None and len(seeds) == R
    b = min(k + max(oversample, 0), n)
    k = min(k, n)
    max_blocks = max(1, -(-min(max_iter, n) // b))

    def fill(rows, step):  # random columns for a closed Krylov space, reproducible per replica
        def f(attempt):
            return random_block(
                [seeds[i] for i in rows.tolist()], b, n, salt * 4099 + 3 * step + attempt + 1, dtype, device
            )

        return f

    all_rows = torch.arange(R, device=device)
    block = _orthonormal_block(_start(V0, seeds, b, k, n, salt, explore, dtype, device), None, fill(all_rows, 0))

    vals = torch.zeros(R, k, dtype=dtype, device=device)
    vecs = torch.zeros(R, k, n, dtype=dtype, device=device)
    block_out = torch.zeros(R, b, n, dtype=dtype, device=device)
    res = torch.full((R, k), float("inf"), dtype=dtype, device=device)
    conv = torch.zeros(R, k, dtype=torch.bool, device=device)
    products = torch.zeros(R, dtype=torch.long, device=device)

    rows = all_rows
    # the basis Q and H Q, allocated once at their largest and filled block by block: a basis
    # grown by concatenation copies itself every step, and with freed memory kept in the heap
    # (machine.perf.keep_freed_memory) the copies of a 10⁵–10⁶-parameter basis pile up
    cols = min(max_blocks * b, n)
    Qbuf = torch.empty(R, cols, n, dtype=dtype, device=device)
    HQbuf = torch.empty(R, cols, n, dtype=dtype, device=device)
    m = 0
    T: torch.Tensor | None = None
    prev_ritz = None
    for step in range(max_blocks):
        W = op(block, rows)
        bw = block.shape[1]
        products[rows] += bw
        Qbuf[:, m : m + bw], HQbuf[:, m : m + bw] = block, W
        m += bw
        Q, HQ = Qbuf[:, :m], HQbuf[:, :m]
        T = _grow(T, torch.bmm(Q, W.transpose(1, 2)), bw)
        ritz_b, Yb, HY = _ritz(T, Q, HQ, min(b, m), k)
        Y, lam = Yb[:, :k], ritz_b[:, :k]
        r_true = _norm(HY - lam.unsqueeze(-1) * Y)
        scale = ritz_b[:, :1].abs().clamp_min(1e-12)
        ok_res = (r_true <= tol * scale).all(dim=1)
        if m >= n:  # the whole space: the Ritz pairs are exact
            settled = torch.ones_like(ok_res)
        elif prev_ritz is None:
            settled = torch.zeros_like(ok_res)
        else:
            gt = 10 * tol if guard_tol is None else guard_tol
            move = (ritz_b - prev_ritz).abs()
            settled = (move[:, :k] <= tol * scale).all(dim=1) & (move[:, k:] <= gt * scale).all(dim=1)
        done = ok_res & settled
        last = step == max_blocks - 1 or m >= n
        finish = torch.ones_like(done) if last else done
        if bool(finish.any()):
            idx = rows[finish]
            vals[idx], vecs[idx], res[idx] = lam[finish], Y[finish], r_true[finish]
            block_out[idx] = Yb[finish]
            conv[idx] = (r_true[finish] <= tol * scale[finish]) & done[finish].unsqueeze(1)
        if last or bool(finish.all()):
            break
        keep = ~finish
        if not bool(keep.all()):  # masking: converged replicas leave the batch
            rows, T, W, ritz_b = rows[keep], T[keep], W[keep], ritz_b[keep]
            Qbuf, HQbuf = _kept(Qbuf, keep, m), _kept(HQbuf, keep, m)
            Q, HQ = Qbuf[:, :m], HQbuf[:, :m]
        prev_ritz = ritz_b
        if m + b <= n:
            block = _orthonormal_block(W, Q, fill(rows, step + 1))
        else:  # the last few dimensions: an orthonormal basis of what Q does not span
            block = _orthonormal_block(fill(rows, step + 1)(0), Q, fill(rows, step + 2))[:, : n - m]
    return EigResult(vals, _fix_sign(vecs), res, conv, int(products.max()), products, block_out)


def _kept(buf: torch.Tensor, keep: torch.Tensor, m: int) -> torch.Tensor:
    """The rows `keep` of a basis buffer in a new buffer of the same length, only its first m
    columns copied (indexing the whole buffer would write, and so commit, all of its pages)."""
    out = buf.new_empty((int(keep.sum()), *buf.shape[1:]))
    out[:, :m] = buf[keep, :m]
    return out


def _start(V0, seeds, b: int, k: int, n: int, salt: int, explore: float, dtype, device) -> torch.Tensor:
    """The (R, b, n) start block before orthonormalisation: the warm-start vectors (the guards
    among them with `explore` × a fresh random part), then random columns."""
    j = min(V0.shape[1], b) if V0 is not None else 0
    first = min(j, k)  # the random columns from here on: fresh columns and the guards' fresh parts
    start = random_block(seeds, b, n, salt, dtype, device, first)
    if V0 is None or j == 0:
        return start
    warm = V0[:, :j].to(dtype)
    if j > k:  # carried guard vectors: keep exploring with a fresh random part
        g = warm[:, k:] / _norm(warm[:, k:], keepdim=True)
        r = start[:, : j - k] / _norm(start[:, : j - k], keepdim=True)
        warm = torch.cat([warm[:, :k], g + explore * r], dim=1)
    return torch.cat([warm, start[:, j - first :]], dim=1)


def _grow(T: torch.Tensor | None, C: torch.Tensor, bw: int) -> torch.Tensor:
    """T = QᵀHQ extended by the new block's columns C = Q (HQ_new)ᵀ (R, m, bw), symmetrised."""
    if T is None:
        T = C
    else:
        m = C.shape[1]
        top = torch.cat([T, C[:, : m - bw].transpose(1, 2)], dim=1)
        T = torch.cat([top, C], dim=2)
    return 0.5 * (T + T.transpose(1, 2))


def _ritz(T: torch.Tensor, Q: torch.Tensor, HQ: torch.Tensor, nb: int, k: int):
    """The top nb Ritz values (largest first), their Ritz vectors and H times the top k of them."""
    ritz, S = torch.linalg.eigh(T)
    S_b = S.flip(-1)[:, :, :nb]
    return ritz.flip(-1)[:, :nb], torch.bmm(S_b.transpose(1, 2), Q), torch.bmm(S_b[:, :, :k].transpose(1, 2), HQ)


def dense_topk(
    op: BlockOp, R: int, n: int, k: int, b: int | None = None, tol: float = 1e-3, dtype=torch.float64, device="cpu"
) -> EigResult:
    """Top-k eigenpairs of R small operators from their whole matrices: op applied to the n unit
    vectors (n products per replica), symmetrised, the top b eigenpairs (`_top_eigh`). Exact to
    rounding, with no iteration to converge or to miss an eigenvalue, and none of the Krylov
    solver's own per-call work, which is most of a solve for networks of a few dozen parameters.
    `block` holds the top b eigenvectors, so a later Krylov solve can start from it. R × n² numbers."""
    k, b = min(k, n), min(k + 1 if b is None else b, n)
    H = op(torch.eye(n, dtype=dtype, device=device).expand(R, n, n).contiguous(), torch.arange(R, device=device))
    H = 0.5 * (H + H.transpose(1, 2))  # row j: H e_j
    lam, V = _top_eigh(H, b)
    vals, vecs = lam[:, :k], V[:, :k]
    res = _norm(torch.bmm(vecs, H) - vals.unsqueeze(-1) * vecs)
    conv = res <= tol * lam[:, :1].abs().clamp_min(1e-12)
    products = torch.full((R,), n, dtype=torch.long, device=device)
    return EigResult(vals, _fix_sign(vecs), res, conv, n, products, V)


def _top_eigh(H: torch.Tensor, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The b largest eigenvalues (R, b), largest first, and their eigenvectors as rows (R, b, n)
    of symmetric H (R, n, n). On the CPU with scipy installed LAPACK's subset solver syevr
    (only the wanted pairs: faster than torch's full `eigh` for the small n this serves, and
    without `scipy.linalg.eigh`'s per-call checks), else `torch.linalg.eigh`."""
    R, n, _ = H.shape
    if H.device.type != "cpu" or _lapack is None:
        w, S = torch.linalg.eigh(H)
        return w.flip(-1)[:, :b], S.flip(-1).transpose(1, 2)[:, :b].contiguous()
    Hn = H.detach().numpy()
    syevr, lwork, liwork = _syevr(n, Hn.dtype)
    lam, V = np.empty((R, b), Hn.dtype), np.empty((R, b, n), Hn.dtype)
    for r in range(R):
        w, S, _, _, info = syevr(Hn[r], compute_v=1, range="I", il=n - b + 1, iu=n, lwork=lwork, liwork=liwork)
        if info != 0:
            raise np.linalg.LinAlgError(f"syevr failed (info {info}) on replica {r}'s Hessian")
        lam[r], V[r] = w[b - 1 :: -1], S[:, b - 1 :: -1].T
    return torch.from_numpy(lam), torch.from_numpy(V)


@functools.lru_cache(maxsize=8)
def _syevr(n: int, dtype: np.dtype):
    """scipy's syevr for this dtype with its workspace sizes for order n (queried once)."""
    syevr, query = _lapack.get_lapack_funcs(("syevr", "syevr_lwork"), dtype=dtype)
    lwork, liwork, _ = query(n)
    return syevr, int(lwork), int(liwork)
