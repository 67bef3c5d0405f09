import h5py
import numpy as np
import pytest

from landscape import LandscapeError
from landscape.problem.data import load_dataset, spiral, spiral_dataset


def test_spiral_matches_the_formula():
    N, C, seed = 7, 3, 4
    X, y = spiral(N, C, seed)
    rng = np.random.RandomState(seed)
    for j in range(C):
        noise = rng.randn(N)
        for i in range(N):
            r = i / (N - 1)
            th = 2 * np.pi * j / C + 4 * np.pi * i / (N - 1) + 0.2 * noise[i]
            assert X[j * N + i] == pytest.approx([r * np.cos(th), r * np.sin(th)], abs=1e-12)
            assert y[j * N + i] == j


def test_train_and_validation_differ_only_by_seed():
    d = spiral_dataset(100, seed=0, val_seed=1)
    assert d.X.shape == (300, 2) and d.num_classes == 3
    assert np.bincount(d.y).tolist() == [100, 100, 100]
    assert not np.allclose(d.X, d.X_val)
    np.testing.assert_array_equal(spiral_dataset(100, seed=0, val_seed=0).X_val, d.X)


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_user_data_roundtrip(tmp_path, suffix):
    X = np.random.RandomState(0).randn(20, 4)
    y = np.arange(20) % 4
    p = tmp_path / f"d{suffix}"
    if suffix == ".npz":
        np.savez(p, X=X, y=y, X_val=X[:5], y_val=y[:5])
    else:
        with h5py.File(p, "w") as f:
            f["X"], f["y"], f["X_val"], f["y_val"] = X, y, X[:5], y[:5]
    d = load_dataset(p)
    np.testing.assert_array_equal(d.X, X)
    assert d.num_classes == 4 and d.input_dim == 4 and d.X_val.shape == (5, 4)


@pytest.mark.parametrize(
    "arrays, msg",
    [
        (dict(X=np.zeros((3, 2))), "missing array 'y'"),
        (dict(X=np.zeros((3, 2)), y=np.zeros(4)), "3 entries"),
        (dict(X=np.zeros(3), y=np.zeros(3)), "samples × features"),
        (dict(X=np.full((3, 2), np.nan), y=np.zeros(3)), "finite"),
        (dict(X=np.zeros((3, 2)), y=np.array([0, 1.5, 1])), "integers"),
        (dict(X=np.zeros((3, 2)), y=np.array([0, 1, 1]), X_val=np.zeros((2, 2))), "both X_val and y_val"),
    ],
)
def test_malformed_data_is_refused(tmp_path, arrays, msg):
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(LandscapeError, match=msg):
        load_dataset(p)


def test_unreadable_data(tmp_path):
    p = tmp_path / "junk.h5"
    p.write_text("not hdf5")
    with pytest.raises(LandscapeError, match="cannot read"):
        load_dataset(p)
    with pytest.raises(LandscapeError, match="does not exist"):
        load_dataset(tmp_path / "nope.npz")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(LandscapeError, match=".npz, .h5"):
        load_dataset(tmp_path / "x.csv")


def test_shipped_spiral_file_is_the_reference_spiral():
    from pathlib import Path

    d = load_dataset(Path(__file__).resolve().parents[3] / "data" / "spiral_p300.h5")
    ref = spiral_dataset(100, seed=0, val_seed=1)
    np.testing.assert_array_equal(d.X, ref.X)
    np.testing.assert_array_equal(d.y_val, ref.y_val)
    np.testing.assert_array_equal(d.X_val, ref.X_val)
