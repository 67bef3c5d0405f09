"""Landscape views against independent computations: every surface point against a loop of
plain autograd forwards, the filter normalisation against θ's own filter norms, batching and
recomputation bit for bit, PCA against the eigenvectors of the path's Gram matrix, and the
interpolation's endpoints against the recorded values."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from landscape import LandscapeError
from landscape.analysis.surfaces import filter_normalized, interpolate, pca, random_directions, recompute, surface
from landscape.app.cli import main
from landscape.problem import losses
from landscape.runs.opened import Run
from tests import reference

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def independent(eng, theta, D, a, b, t):
    """F_t and the static loss at θ + a d1 + b d2, one point at a time (tests/reference.py)."""
    G = eng.gamma(t)[:1]
    th = torch.as_tensor(theta + a * D[0] + b * D[1])[None]
    f = reference.forward(eng.spec, th, eng.X)
    F = losses.loss(eng.loss_name, f, eng.y, eng.Y, G)[0]
    static = losses.loss(eng.static_name, f, eng.y, eng.Y, G)[0]
    acc = (f.argmax(-1) == eng.y).double().mean()
    return float(F), float(static), float(acc)


@pytest.mark.parametrize("directions", ["random", "eigen"])
def test_every_point_is_the_loss_there(directions):
    run = Run.open(SHIPPED)
    res = surface(run, 9000, replica=2, directions=directions, grid=5, span=0.8, seed=3)
    eng = run.engine([2])
    theta, D = res.theta.values, res.direction.values
    assert np.allclose(theta, run.ds.params.isel(replica=2).sel(pstep=9000).values, rtol=0, atol=0)
    for i, a in enumerate(res.a.values):
        for j, b in enumerate(res.b.values):
            F, static, acc = independent(eng, theta, D, a, b, 9000)
            assert res.loss.values[i, j] == pytest.approx(F, rel=1e-12)
            assert res.loss_static.values[i, j] == pytest.approx(static, rel=1e-12)
            assert res.train_acc.values[i, j] == acc
    # the centre is the recorded loss at that step
    recorded = run.ds.loss.isel(replica=2, step=9000).values.item()
    assert res.loss.sel(a=0, b=0).values.item() == pytest.approx(recorded, rel=1e-12)
    if directions == "eigen":  # unit top eigenvectors of the dense Hessian; the curvature along d1 is λ1
        H = reference.dense_hessian(eng, torch.as_tensor(theta)[None], 9000, 0)
        w = np.linalg.eigvalsh(H)[::-1][:2]
        np.testing.assert_allclose(np.einsum("in,nm,im->i", D, H, D), w, rtol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(D, axis=1), 1.0, rtol=1e-12)
        # finite differences (a ReLU net: steps small enough not to cross a kink)
        fine = surface(run, 9000, replica=2, directions="eigen", grid=5, span=1e-4)
        F, h = fine.loss.sel(b=0).values, float(fine.a[1] - fine.a[0])
        assert (F[3] - 2 * F[2] + F[1]) / h**2 == pytest.approx(w[0], rel=1e-4)


def test_filters_have_thetas_norms_and_biases_follow_the_option():
    run = Run.open(SHIPPED)
    eng = run.engine([0])
    theta = run.ds.params.isel(replica=0).sel(pstep=5000).values
    for bias in ("zero", "keep"):
        D = random_directions(eng, theta, seed=7, k=2, bias=bias)
        off = 0
        for _, shape in eng.param_map():
            size = int(np.prod(shape))
            d, th = D[:, off : off + size].reshape(2, *shape), theta[off : off + size].reshape(shape)
            if len(shape) == 1:
                want = np.zeros_like(th) if bias == "zero" else th
                np.testing.assert_array_equal(d[0], want)
            else:  # the MLP holds W as (in, out): a filter is a column, the weights into one unit
                np.testing.assert_allclose(
                    np.linalg.norm(d, axis=1), np.broadcast_to(np.linalg.norm(th, axis=0), (2, shape[1])), rtol=1e-8
                )
            off += size
    # torch's layout (out, in, …): a filter is the first axis
    W = np.random.default_rng(0).normal(size=(4, 3, 2, 2))
    d = filter_normalized(np.random.default_rng(1).normal(size=W.size), W.ravel(), [["conv.weight", [4, 3, 2, 2]]], 0)
    np.testing.assert_allclose(np.linalg.norm(d.reshape(4, -1), axis=1), np.linalg.norm(W.reshape(4, -1), axis=1))
    with pytest.raises(LandscapeError, match="bias must be one of"):
        filter_normalized(d, W.ravel(), [["w", [4, 12]]], 0, bias="drop")


def test_batching_and_recomputation_give_the_same_surface():
    run = Run.open(SHIPPED)
    one = surface(run, 7000, 1, "random", grid=9, seed=5, batch=10_000)
    many = surface(run, 7000, 1, "random", grid=9, seed=5, batch=7)
    for v in ("loss", "loss_static", "train_acc", "val_acc", "direction"):
        np.testing.assert_allclose(one[v].values, many[v].values, rtol=1e-14, atol=0)
    again = recompute(run, one, batch=13)
    np.testing.assert_allclose(again.loss.values, one.loss.values, rtol=1e-14, atol=0)
    auto = surface(run, 7000, 1, "random", grid=9, seed=5)  # the engine's own batch size
    np.testing.assert_allclose(auto.loss.values, one.loss.values, rtol=1e-14, atol=0)
    one1 = surface(run, 7000, 1, "random", grid=9, seed=5, dims=1)
    assert one1.loss.dims == ("a",) and one1.loss.sel(a=0).values.item() == pytest.approx(
        one.loss.sel(a=0, b=0).values.item(), rel=1e-12
    )


def test_pca_against_the_paths_gram_matrix():
    res = pca(SHIPPED, replica=3, k=3)
    P = Run.open(SHIPPED).ds.params.isel(replica=3).values
    D = P - P[-1]
    w, V = np.linalg.eigh(D.T @ D)  # independent of the SVD: the covariance's eigenvectors
    top = V[:, ::-1][:, :3].T
    for i in range(3):
        assert abs(abs(res.component.values[i] @ top[i]) - 1) < 1e-8
    np.testing.assert_allclose(res.explained.values, w[::-1][:3] / w.sum(), rtol=1e-8)
    np.testing.assert_allclose(res.path.values, D @ res.component.values.T, rtol=1e-12)
    surf = surface(SHIPPED, 9000, 3, "pca", grid=5)
    # the whole path lies inside the plane's grid
    p = surf.path.values
    assert surf.a.min() <= p[:, 0].min() and p[:, 0].max() <= surf.a.max()
    assert surf.b.min() <= p[:, 1].min() and p[:, 1].max() <= surf.b.max()


def test_interpolation_endpoints_are_the_recorded_values():
    run = Run.open(SHIPPED)
    res = interpolate(run, 4000, 0, step_b=9000, alphas=[0.0, 0.5, 1.0])
    rec = run.ds.isel(replica=0)
    assert res.loss.sel(alpha=0).values.item() == pytest.approx(rec.loss.sel(step=4000).values.item(), rel=1e-12)
    assert res.train_acc.sel(alpha=0).values.item() == rec.train_acc.sel(step=4000).values.item()
    # θ_b under a's schedule: the static loss and the accuracy do not depend on Γ
    assert res.loss_static.sel(alpha=1).values.item() == pytest.approx(
        rec.loss_static.sel(step=9000).values.item(), rel=1e-12
    )
    assert res.train_acc.sel(alpha=1).values.item() == rec.train_acc.sel(step=9000).values.item()
    # two replicas of one store
    two = interpolate(run, 9000, 0, replica_b=1, alphas=[1.0])
    assert two.loss_static.values.item() == pytest.approx(
        run.ds.loss_static.isel(replica=1, step=9000).values.item(), rel=1e-12
    )


def test_bad_requests_are_one_line():
    with pytest.raises(LandscapeError, match="dims 1 or 2"):
        surface(SHIPPED, 100, dims=3)
    with pytest.raises(LandscapeError, match="directions must be one of"):
        surface(SHIPPED, 100, directions="hessian")
    with pytest.raises(LandscapeError, match="must have shape"):
        surface(SHIPPED, 100, directions=np.zeros((2, 5)))
    with pytest.raises(LandscapeError, match="step 99999 out of range"):
        surface(SHIPPED, 99999)
    with pytest.raises(LandscapeError, match="replica 7 out of range"):
        interpolate(SHIPPED, 100, 7)


@pytest.mark.slow
def test_the_commands(tmp_path):
    store = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, store)
    for args in (
        ["surface", str(store), "--at-step", "9000", "--grid", "5", "--fig", str(tmp_path / "s.png")],
        [
            "surface",
            str(store),
            "--at-step",
            "9000",
            "--grid",
            "5",
            "--directions",
            "pca",
            "--fig",
            str(tmp_path / "p.png"),
        ],
        ["surface", str(store), "--at-step", "9000", "--grid", "5", "--dims", "1", "--fig", str(tmp_path / "o.png")],
        [
            "interpolate",
            str(store),
            "--from-step",
            "5000",
            "--to-step",
            "9000",
            "--points",
            "5",
            "--fig",
            str(tmp_path / "i.png"),
        ],
        ["pca", str(store)],
    ):
        r = CliRunner().invoke(main, ["analyze", *args])
        assert r.exit_code == 0, r.output
    for png in (tmp_path / "s.png", tmp_path / "p.png", tmp_path / "o.png", tmp_path / "i.png"):
        assert png.stat().st_size > 1000
    s = ["surface", str(store), "--at-step", "9000", "--grid", "5", "--fig"]
    r = CliRunner().invoke(main, ["analyze", *s, str(tmp_path / "h.png"), "--html", "--directions", "pca"])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "h.html").read_text()
    assert "<html>" in html[:100] and "plotly" in html and "saved path" in html  # self-contained, path drawn
    r = CliRunner().invoke(main, ["analyze", *s, str(tmp_path / "h1.png"), "--html", "--dims", "1"])
    assert r.exit_code == 2 and "--html draws 2-D surfaces" in r.output
    import xarray as xr

    saved = xr.open_zarr(store, group="surface/random_r0_t9000_d2")
    assert saved.loss.shape == (5, 5) and saved.direction.shape[0] == 2
    r = CliRunner().invoke(main, ["analyze", *s, str(tmp_path / "f32.png"), "--dtype", "float32"])
    assert r.exit_code == 0, r.output
    f32 = xr.open_zarr(store, group="surface/random_r0_t9000_d2_float32")  # beside the float64 one, not over it
    assert (
        f32.attrs["dtype"] == "float32"
        and xr.open_zarr(store, group="surface/random_r0_t9000_d2").attrs["dtype"] == "float64"
    )
    np.testing.assert_allclose(f32.loss.values, saved.loss.values, rtol=1e-4)
    r = CliRunner().invoke(
        main, ["analyze", "surface", str(store), "--at-step", "9000", "--fig", str(tmp_path / "no" / "x.png")]
    )
    assert r.exit_code == 2 and r.output.count("\n") == 1


def test_the_engine_chooses_its_batch_of_grid_points():
    """The built-in MLP's fused forward takes a whole 51 × 51 grid in one call (it holds no
    activations, only the θ rows); an engine without a C forward keeps batches of 16."""
    from landscape.engines.fused import compiler

    eng = Run.open(SHIPPED).engine([0])
    if compiler() is not None:
        assert eng.evaluation_batch(2601) == 2601
    assert eng.evaluation_batch(5) == 5
    eng._eval_kernel = None  # as on a machine without a C++ compiler
    assert eng.evaluation_batch(2601) == 16


@pytest.mark.parametrize("view", ["surface", "interpolate"])
def test_a_float32_view_is_the_float64_one_to_float32_rounding_and_says_so(tmp_path, view):
    """--dtype float32: the same θ and directions, the evaluation in float32 (relative error of
    the loss well within 1e-4 here), the dtype in the result's attributes and on the figure."""
    run = Run.open(SHIPPED)
    if view == "surface":
        a, b = (surface(run, 9000, replica=1, grid=7, span=0.5, dtype=d) for d in ("float64", "float32"))
        np.testing.assert_array_equal(a.direction.values, b.direction.values)
    else:
        a, b = (interpolate(run, 5000, 1, step_b=9000, alphas=np.linspace(0, 1, 7), dtype=d) for d in (None, "float32"))
    assert a.attrs["dtype"] == "float64" and b.attrs["dtype"] == "float32"
    np.testing.assert_allclose(b.loss.values, a.loss.values, rtol=1e-4)
    assert not np.array_equal(b.loss.values, a.loss.values)  # evaluated in float32 indeed
    right = lambda acc: np.round(acc * run.engine([1]).X.shape[0])  # noqa: E731 (points classified right)
    assert np.mean(right(b.train_acc.values) == right(a.train_acc.values)) > 0.9  # a near-tie may flip one
    from matplotlib.figure import Figure

    from landscape.analysis import figures

    titles = []
    monkey = Figure.savefig
    try:
        Figure.savefig = lambda fig, *a, **k: titles.extend(  # type: ignore
            [ax.get_title() for ax in fig.axes] + [fig.get_suptitle()]
        )
        (figures.draw_surface if view == "surface" else figures.draw_interpolation)(b, tmp_path / "f.png")
    finally:
        Figure.savefig = monkey
    assert any("float32" in t for t in titles)
