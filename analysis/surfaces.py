"""Loss-landscape views around recorded parameters, evaluated as batches of replicas by the
engine (one forward pass per batch of grid points, for the built-in MLP and user modules):

- `surface`: F_t (the dynamical loss at t), the static loss and training/validation accuracy
  on a 1-D or 2-D grid θ_t + a·d1 (+ b·d2), with d random and filter-normalised (Li et al.
  2018), the top Hessian eigenvectors, the trajectory's principal directions, or given;
- `interpolate`: the same along θ(α) = (1 − α)θ_a + αθ_b (Goodfellow et al. 2015);
- `pca`: principal directions of the saved path θ_t − θ_last, explained variance, the path in
  their coordinates.

Directions, seed and grid are stored with every result, so it can be recomputed exactly.
"""

from __future__ import annotations

import numpy as np
import torch
import xarray as xr

from landscape import LandscapeError
from landscape.curvature.spectrum import top_k
from landscape.runs.opened import Run

DIRECTIONS = ("random", "eigen", "pca")
BIAS = ("zero", "keep")


def filter_normalized(d: np.ndarray, theta: np.ndarray, param_map, out_axis: int, bias: str = "zero") -> np.ndarray:
    """`d` (n,) with each filter — the weights into one output unit or channel — scaled to the
    norm of the same filter of θ (Li et al. 2018). `out_axis`: the output axis of a weight as θ
    holds it (0 for torch layouts, −1 for the built-in MLP's W (in, out)). One-dimensional
    parameters (biases, norms' scales): zero (`bias='zero'`) or θ's own values ('keep'), as
    loss-landscape's options."""
    if bias not in BIAS:
        raise LandscapeError(f"bias must be one of {', '.join(BIAS)}")
    out, off = d.astype(np.float64).copy(), 0
    for _, shape in param_map:
        size = int(np.prod(shape))
        dd, th = out[off : off + size].reshape(shape), theta[off : off + size].reshape(shape)
        if len(shape) <= 1:
            dd[...] = 0.0 if bias == "zero" else th
        else:
            dm, tm = np.moveaxis(dd, out_axis, 0), np.moveaxis(th, out_axis, 0)  # views: filters first
            axes = tuple(range(1, dm.ndim))
            dm *= np.sqrt((tm**2).sum(axis=axes, keepdims=True)) / (
                np.sqrt((dm**2).sum(axis=axes, keepdims=True)) + 1e-10
            )
        off += size
    return out


def _out_axis(engine) -> int:
    return -1 if hasattr(engine, "spec") else 0  # the built-in MLP holds W as (in, out)


def random_directions(engine, theta: np.ndarray, seed: int, k: int = 2, bias: str = "zero") -> np.ndarray:
    """k (k, n) Gaussian directions from `seed`, each filter-normalised to θ."""
    g = np.random.default_rng(seed).standard_normal((k, theta.size))
    return np.stack([filter_normalized(v, theta, engine.param_map(), _out_axis(engine), bias) for v in g])


def pca(run, replica: int = 0, k: int = 2) -> xr.Dataset:
    """Principal directions of the saved path θ_t − θ_last (one row per saved step), their
    explained variance ratios, and the path in their coordinates."""
    run = Run.open(run)
    idx = run.check_replicas([replica])[0]
    P = run.saved("params", idx).astype(np.float64)  # (pstep, n)
    if P.shape[0] < 3:
        raise LandscapeError(f"the PCA of a path needs at least 3 saved parameter vectors, the store has {P.shape[0]}")
    if not 1 <= k <= P.shape[0] - 1:  # θ_t − θ_last: the last row is zero
        raise LandscapeError(
            f"--components must be from 1 to {P.shape[0] - 1} (the path has {P.shape[0]} saved vectors), got {k}"
        )
    D = P - P[-1]
    _, S, Vt = np.linalg.svd(D, full_matrices=False)
    var = S**2 / (S**2).sum()
    return xr.Dataset(
        {
            "component": (("pc", "param"), Vt[:k]),
            "explained": (("pc",), var[:k]),
            "path": (("pstep", "pc"), D @ Vt[:k].T),
        },
        coords={"pc": np.arange(k), "pstep": run.ds.pstep.values, "param": np.arange(D.shape[1])},
        attrs={"replica": idx, "source": str(run.path), "centre": "the last saved θ"},
    )


def _eigen_directions(engine, theta: torch.Tensor, step: int, k: int) -> np.ndarray:
    res = top_k(engine, theta[None], step, k=k, tol=1e-8, max_iter=300)
    return res.eigvecs[0].detach().cpu().double().numpy()


def _view_engine(run, idx: int, engine, dtype: str | None):
    """The engine a view evaluates with: the recording's, or one in another dtype."""
    return engine if dtype is None or dtype == run.config.dtype else run.engine([idx], dtype=dtype)


def _evaluate(engine, theta: np.ndarray, D: np.ndarray, coef: np.ndarray, step: int, batch: int | None) -> dict:
    """The engine's evaluation at θ + coef @ D for every row of coef, built batch by batch (None:
    the engine's own batch size, `evaluation_batch`)."""
    batch = engine.evaluation_batch(coef.shape[0]) if batch is None else batch
    th = torch.as_tensor(theta).to(engine.dtype).to(engine.device)
    Dt = torch.as_tensor(D).to(engine.dtype).to(engine.device)
    cols: dict[str, list] = {}
    for i in range(0, coef.shape[0], batch):
        c = torch.as_tensor(coef[i : i + batch]).to(engine.dtype).to(engine.device)
        # θ + c·D in one GEMM (a sum of two fresh temporaries was a sixth of an MLP surface)
        for name, v in engine.evaluate_at(torch.addmm(th, c, Dt), step, 0, batch).items():
            cols.setdefault(name, []).append(v.detach().cpu().double().numpy())
    return {name: np.concatenate(v) for name, v in cols.items()}


def surface(
    run,
    step: int,
    replica: int = 0,
    directions="random",
    grid: int = 51,
    span: float | None = None,
    dims: int = 2,
    seed: int = 0,
    bias: str = "zero",
    batch: int | None = None,
    coords: tuple | None = None,
    dtype: str | None = None,
) -> xr.Dataset:
    """F_t, the static loss and the accuracies on a `grid`^dims grid of θ_t + a·d1 (+ b·d2),
    a, b ∈ [−span, span] (default 1; for 'pca' the path's extent and a tenth more, unless a
    span is given; `coords`: the axes' values themselves). `directions`: 'random' (seeded,
    filter-normalised), 'eigen' (the top Hessian eigenvectors at θ_t, unit norm), 'pca' (the
    path's principal directions, unit norm) or an array (dims, n) of your own. `dtype`: the
    evaluation's ('float32' for speed over the last digits; θ_t and the directions stay the
    recording's own); default the recording's."""
    run = Run.open(run)
    idx = run.check_replicas([replica])[0]
    if (
        dims not in (1, 2)
        or grid < 2
        or not (span is None or (np.isfinite(span) and span > 0))
        or (batch is not None and batch < 1)
    ):
        raise LandscapeError("a surface needs dims 1 or 2, a grid of at least 2 points, a finite span > 0, batch >= 1")
    if seed < 0:
        raise LandscapeError(f"the seed of the random directions must be >= 0, got {seed}")
    from landscape.machine import memory

    # the result's four grids (F, static loss, two accuracies) and the axes, before any work
    memory.require(grid**dims * 8 * 5, f"a {grid}" + (f" × {grid}" if dims == 2 else "") + " surface")
    engine = run.engine([idx])
    theta = run.params_at([step], [idx])[0, 0]
    kind = directions if isinstance(directions, str) else "given"
    if kind == "random":
        D = random_directions(engine, theta, seed, dims, bias)
    elif kind == "eigen":
        D = _eigen_directions(engine, torch.as_tensor(theta).to(engine.dtype), step, dims)
    elif kind == "pca":
        plane = pca(run, idx, dims)
        D = plane.component.values
    elif kind == "given":
        D = np.atleast_2d(np.asarray(directions, dtype=np.float64))
        if D.shape != (dims, theta.size):
            raise LandscapeError(f"given directions must have shape ({dims}, {theta.size}), not {D.shape}")
    else:
        raise LandscapeError(f"directions must be one of {', '.join(DIRECTIONS)} or an array")
    # the batch is the evaluating engine's (a float32 view builds no float64 kernel)
    view = _view_engine(run, idx, engine, dtype)
    batch = view.evaluation_batch(grid**dims) if batch is None else batch
    memory.require(min(batch, grid**dims) * (theta.size + 8) * 8 * 4, f"a batch of {batch} grid points")
    axes = ("a",) if dims == 1 else ("a", "b")
    path = (run.saved("params", idx) - theta) @ D.T if kind == "pca" else None
    if coords is not None:
        ticks = [np.asarray(c, dtype=np.float64) for c in coords]
    elif span is None and path is not None:  # the whole path on the plane, a tenth beyond it
        lo, hi = path.min(axis=0), path.max(axis=0)
        pad = 0.1 * np.maximum(hi - lo, 1e-12)
        ticks = [np.linspace(lo[i] - pad[i], hi[i] + pad[i], grid) for i in range(dims)]
    else:
        s = 1.0 if span is None else float(span)
        ticks = [np.linspace(-s, s, grid)] * dims
    mesh = np.meshgrid(*ticks, indexing="ij")
    coef = np.stack([g.ravel() for g in mesh], axis=1)
    vals = _evaluate(view, theta, D, coef, step, batch)
    shape = tuple(len(x) for x in ticks)
    out = xr.Dataset(
        {name: (axes, v.reshape(shape)) for name, v in vals.items()},
        coords={ax: x for ax, x in zip(axes, ticks)},
    )
    out["direction"] = (("dir", "param"), D)
    out["theta"] = (("param",), theta)
    if path is not None:  # the path drawn on its own plane
        out["path"] = (("pstep", "dir"), path)
        out["explained"] = (("dir",), plane.explained.values)
        out = out.assign_coords(pstep=run.ds.pstep.values)
    return out.assign_attrs(
        step=int(step), replica=idx, directions=kind, seed=int(seed), bias=bias, grid=int(grid),
        loss_name=run.config.loss, eta=float(run.ds.eta.values[idx]), source=str(run.path),
        dtype=dtype or run.config.dtype,
    )  # fmt: skip


def recompute(run, result: xr.Dataset, batch: int | None = None) -> xr.Dataset:
    """A stored surface evaluated again from its own directions and grid (for checks and for
    new quantities at the same points)."""
    dims = result.sizes["dir"]
    axes = [result[ax].values for ax in ("a", "b")[:dims]]
    return surface(
        run, result.attrs["step"], result.attrs["replica"], result.direction.values, dims=dims, batch=batch,
        coords=tuple(axes),
    )  # fmt: skip


def interpolate(
    run_a, step_a: int, replica_a: int = 0, run_b=None, step_b: int | None = None, replica_b: int | None = None,
    alphas=None, batch: int | None = None, dtype: str | None = None,
) -> xr.Dataset:  # fmt: skip
    """F (run a's F_{t_a}), the static loss and the accuracies along θ(α) = (1 − α)θ_a + αθ_b
    (default α from −0.5 to 1.5): between two steps of a run, two replicas or two stores."""
    ra = Run.open(run_a)
    rb = ra if run_b is None else Run.open(run_b)
    ia = ra.check_replicas([replica_a])[0]
    ib = rb.check_replicas([replica_a if replica_b is None else replica_b])[0]
    tb = step_a if step_b is None else step_b
    th_a = ra.params_at([step_a], [ia])[0, 0]
    th_b = rb.params_at([tb], [ib])[0, 0]
    if th_a.size != th_b.size:
        raise LandscapeError(f"the two parameter vectors differ in length ({th_a.size} and {th_b.size})")
    al = np.linspace(-0.5, 1.5, 41) if alphas is None else np.asarray(alphas, dtype=np.float64)
    vals = _evaluate(ra.engine([ia], dtype=dtype), th_a, (th_b - th_a)[None], al[:, None], step_a, batch)
    out = xr.Dataset({name: (("alpha",), v) for name, v in vals.items()}, coords={"alpha": al})
    return out.assign_attrs(
        step_a=int(step_a), step_b=int(tb), replica_a=ia, replica_b=ib, source_a=str(ra.path), source_b=str(rb.path),
        loss_name=ra.config.loss, dtype=dtype or ra.config.dtype,
    )  # fmt: skip
