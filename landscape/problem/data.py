"""Datasets: the paper's three-arm spiral, and the user's own X, y from HDF5 or NPZ."""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landscape import LandscapeError
from landscape.machine.extras import require


@dataclass(frozen=True)
class Dataset:
    """Inputs and integer labels of a training set and (optionally) a validation set."""

    X: np.ndarray  # (P, d) float64
    y: np.ndarray  # (P,) int64 in [0, num_classes)
    X_val: np.ndarray | None
    y_val: np.ndarray | None
    num_classes: int
    source: str

    @property
    def input_dim(self) -> int:
        return int(self.X.shape[1])

    def digest(self) -> str:
        """SHA-256 of the arrays' contents (shapes, dtypes and values): what a store records,
        so that a resume can tell whether it would train on the same data."""
        h = hashlib.sha256()
        for a in (self.X, self.y, self.X_val, self.y_val):
            if a is None:
                h.update(b"none")
                continue
            a = np.ascontiguousarray(a)
            h.update(f"{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        return h.hexdigest()


MAX_CLASSES = 100_000


def spiral(n_per_class: int = 100, num_classes: int = 3, seed: int = 0, noise: float = 0.2):
    """The spec's spiral: r = linspace(0,1,N), θ = linspace(2πj/C, 2πj/C + 4π, N) + noise·randn(N).

    Noise is on the angle only and there is no normalisation. Returns (X, y).
    """
    rng = np.random.RandomState(seed)
    X = np.zeros((n_per_class * num_classes, 2))
    y = np.zeros(n_per_class * num_classes, dtype=np.int64)
    for j in range(num_classes):
        r = np.linspace(0.0, 1.0, n_per_class)
        start = 2 * np.pi * j / num_classes
        t = np.linspace(start, start + 4 * np.pi, n_per_class) + noise * rng.randn(n_per_class)
        sl = slice(j * n_per_class, (j + 1) * n_per_class)
        X[sl] = np.c_[r * np.cos(t), r * np.sin(t)]
        y[sl] = j
    return X, y


def spiral_dataset(n_per_class=100, num_classes=3, seed=0, val_seed=1, noise=0.2) -> Dataset:
    """Train and validation spirals drawn by the same generator with different seeds."""
    X, y = spiral(n_per_class, num_classes, seed, noise)
    Xv, yv = spiral(n_per_class, num_classes, val_seed, noise)
    return Dataset(
        X, y, Xv, yv, num_classes, f"spiral(n={n_per_class}, C={num_classes}, seed={seed}, val_seed={val_seed})"
    )


def _read_arrays(path: Path) -> dict:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            if not zipfile.is_zipfile(path):  # a .npy or text file renamed, an empty file, …
                raise LandscapeError(f"data file {path} is not an NPZ archive (np.savez writes one)")
            with np.load(path, allow_pickle=False) as f:
                if not isinstance(f, np.lib.npyio.NpzFile):
                    raise LandscapeError(f"data file {path} is not an NPZ archive (np.savez writes one)")
                return {k: np.asarray(f[k]) for k in f.files}
        if suffix in (".h5", ".hdf5", ".hdf"):
            h5py = require("h5py", "h5", "reading an HDF5 data file")

            with h5py.File(path, "r") as f:
                return {k: np.asarray(f[k]) for k in f.keys() if isinstance(f[k], h5py.Dataset)}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = (
            "it holds Python objects (pickles), which are never loaded"
            if "allow_pickle" in str(exc)
            else (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        )
        raise LandscapeError(f"cannot read data file {path}: {reason}") from None
    raise LandscapeError(f"data file {path} must end in .npz, .h5 or .hdf5")


def _check_pair(X, y, name: str, path: Path):
    if X.ndim < 2 or X.size == 0:
        raise LandscapeError(
            f"{path}: {name} must be a non-empty array of samples × features (or × any shape), " f"got shape {X.shape}"
        )
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise LandscapeError(f"{path}: labels for {name} must be 1-D with {X.shape[0]} entries, got shape {y.shape}")
    if not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X) or not np.all(np.isfinite(X)):
        raise LandscapeError(f"{path}: {name} must hold finite real numbers")
    if (
        not np.issubdtype(y.dtype, np.number)
        or np.iscomplexobj(y)
        or not np.all(np.isfinite(y))
        or np.any(y < 0)
        or np.any(y != np.round(y))
    ):
        raise LandscapeError(f"{path}: labels for {name} must be non-negative integers")
    if y.size and float(np.max(y)) >= MAX_CLASSES:
        raise LandscapeError(
            f"{path}: labels go up to {float(np.max(y)):.0f} (in {name}); classes must be numbered 0..C-1 with "
            f"C <= {MAX_CLASSES} (one output and one one-hot column per class)"
        )


def load_dataset(path: str | Path) -> Dataset:
    """Load arrays `X` (P, d) and `y` (P,) integer labels; optional `X_val`, `y_val`."""
    path = Path(path)
    if not path.is_file():
        raise LandscapeError(f"data file {path} does not exist")
    arrays = _read_arrays(path)
    for key in ("X", "y"):
        if key not in arrays:
            raise LandscapeError(f"{path}: missing array '{key}' (found: {', '.join(sorted(arrays)) or 'none'})")
    X, y = arrays["X"], arrays["y"]
    _check_pair(X, y, "X", path)
    Xv = yv = None
    if ("X_val" in arrays) != ("y_val" in arrays):
        raise LandscapeError(f"{path}: give both X_val and y_val, or neither")
    if "X_val" in arrays:
        Xv, yv = arrays["X_val"], arrays["y_val"]
        _check_pair(Xv, yv, "X_val", path)
        if Xv.shape[1:] != X.shape[1:]:
            raise LandscapeError(f"{path}: X_val samples have shape {Xv.shape[1:]}, X samples {X.shape[1:]}")
    present = np.unique(y.astype(np.int64))
    num_classes = int(present[-1]) + 1
    if present.size < 2:
        raise LandscapeError(f"{path}: the training labels hold one class ({int(present[0])}); need at least two")
    if present.size != num_classes:  # an empty class would get an output and a Γ_i of its own
        missing = sorted(set(range(num_classes)) - set(present.tolist()))
        shown = ", ".join(map(str, missing[:8])) + (" …" if len(missing) > 8 else "")
        raise LandscapeError(
            f"{path}: classes must be numbered 0..C-1 with every class in the training labels; "
            f"missing: {shown} (renumber them, e.g. y = np.unique(y, return_inverse=True)[1])"
        )
    if yv is not None:
        extra = sorted(set(np.unique(yv.astype(np.int64)).tolist()) - set(present.tolist()))
        if extra:
            raise LandscapeError(
                f"{path}: validation labels {', '.join(map(str, extra[:8]))} are not classes of the training labels"
            )
    Xv64 = None if Xv is None else Xv.astype(np.float64)
    yv64 = None if yv is None else yv.astype(np.int64)
    return Dataset(X.astype(np.float64), y.astype(np.int64), Xv64, yv64, num_classes, str(path))


def save_dataset(d: Dataset, path: str | Path):
    """Write X, y (and X_val, y_val) to an .h5 or .npz file that `load_dataset` reads back."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {"X": d.X, "y": d.y}
    if d.X_val is not None and d.y_val is not None:
        arrays.update(X_val=d.X_val, y_val=d.y_val)
    if path.suffix.lower() == ".npz":
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
        return
    h5py = require("h5py", "h5", "writing an HDF5 data file")
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=v, compression="gzip")
        f.attrs["source"] = d.source
