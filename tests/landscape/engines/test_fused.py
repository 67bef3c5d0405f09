"""The fused C++ step (`--fused`) against independent autograd, the eager engine and itself."""

import numpy as np
import pytest
import torch

from landscape import LandscapeError
from landscape.curvature.spectrum import top_k
from landscape.engines import fused
from landscape.engines.mlp import MLPEngine
from landscape.problem.data import Dataset, spiral_dataset
from landscape.problem.losses import LOSSES
from landscape.problem.mlp import MLPSpec
from tests import reference
from tests.reference import assert_top_eigenvalues, dense_hessian

pytestmark = pytest.mark.skipif(fused.compiler() is None, reason="no C++ compiler on this machine")


def blobs(P, d, C, seed=0):
    """P points in d dimensions, C classes (P not a multiple of the block: the tail is padded)."""
    rng = np.random.default_rng(seed)
    y = np.arange(P) % C
    X = rng.normal(size=(P, d)) + 1.5 * rng.normal(size=(C, d))[y]
    Xv = rng.normal(size=(P // 2, d))
    return Dataset(X, y, Xv, np.arange(P // 2) % C, C, "blobs")


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("d, C, width, P", [(2, 3, 13, 37), (5, 2, 8, 16), (3, 4, 21, 101)])
def test_one_fused_step_is_gradient_descent_on_the_autograd_loss(loss, activation, d, C, width, P):
    """θ − η ∇F with ∇F from plain autograd (sample-major forward, float64), and the metrics
    F, the static loss and the training accuracy at θ: every loss, both activations, input
    dims and class counts other than the paper's, widths and point counts off the block size."""
    data = blobs(P, d, C)
    spec = MLPSpec(d, width, C, activation=activation)
    eng = MLPEngine(spec, data, loss, [0.3, 0.05, 1.0], [4.0, 2.0, 70.0], [10, 6, 50], step="fused")
    theta = spec.init([0, 1, 2])
    for t in (0, 3, 17):  # Γ ≠ 1 at these steps
        new, m = eng.step(theta, t)
        th = theta.clone().requires_grad_(True)
        F = reference.loss(eng, th, t)
        (g,) = torch.autograd.grad(F.sum(), th)
        torch.testing.assert_close(new, theta - eng.eta[:, None] * g, rtol=1e-12, atol=1e-13)
        torch.testing.assert_close(m.loss, F.detach(), rtol=1e-13, atol=1e-15)
        f = reference.forward(spec, theta, eng.X)
        static = reference.losses.loss(eng.static_name, f, eng.y, eng.Y, eng.gamma(t))
        torch.testing.assert_close(m.loss_static, static, rtol=1e-13, atol=1e-15)
        assert torch.equal(m.train_acc, (f.argmax(-1) == eng.y).double().mean(1))
        assert torch.equal(m.val_acc, eng.accuracy(theta, val=True))
        theta = new


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_fused_hvp_is_the_dense_float64_hessian(loss, activation):
    """The fused R-operator against replica-by-replica dense Hessians (torch.func.hessian of the
    plain autograd loss): a block of 3 vectors, a subset of the replicas (the solver drops
    converged ones), 4 input dims, 4 classes, 37 points (a padded tail)."""
    data = blobs(37, 4, 4, seed=3)
    spec = MLPSpec(4, 11, 4, activation=activation)
    eng = MLPEngine(spec, data, loss, [0.5] * 3, [7.0, 3.0, 1.5], [40, 13, 20], step="fused")
    theta = spec.init(range(3))
    theta = theta + 0.05 * torch.randn(theta.shape, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    t, rows = 23, torch.tensor([0, 2])
    V = torch.randn(2, 3, spec.num_params, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    HV = eng.hvp_block(theta, t)(V, rows)
    for i, r in enumerate(rows.tolist()):
        H = torch.as_tensor(dense_hessian(eng, theta, t, r))
        torch.testing.assert_close(HV[i], V[i] @ H, rtol=1e-10, atol=1e-12)


def test_fused_spectrum_is_the_dense_spectrum():
    """Top-2 eigenvalues of every replica through the fused HVP = numpy's eigvalsh of the dense
    Hessian, to the solver's tolerance."""
    data = spiral_dataset(20, seed=0, val_seed=1)
    spec = MLPSpec(2, 12, 3)
    eng = MLPEngine(spec, data, "dce", [1.0] * 3, [10.0, 10.0, 30.0], [50, 50, 20], step="fused")
    theta = eng.advance(spec.init(range(3)), 0, 40)
    res = top_k(eng, theta, 40, k=2, tol=1e-8, max_iter=spec.num_params)
    assert_top_eigenvalues(res.eigvals, eng, theta, 40, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("fused_", [True, False])
def test_dense_spectra_of_a_small_network_are_its_exact_eigenvalues(fused_):
    """`dense_below` (the recorder's --eig-dense-below): the whole Hessian from n products, fused
    or eager, has numpy's eigenvalues, agrees with the block Lanczos to its tolerance, and its
    block warm-starts the Lanczos."""
    data = spiral_dataset(20, seed=0, val_seed=1)
    spec = MLPSpec(2, 10, 3)  # 63 parameters
    eng = MLPEngine(spec, data, "dce", [1.0] * 2, [10.0, 30.0], [50, 20], step="fused" if fused_ else "eager")
    theta = eng.advance(spec.init(range(2)), 0, 40)
    res = top_k(eng, theta, 40, k=2, dense_below=64)
    lanczos = top_k(eng, theta, 40, k=2, tol=1e-3)
    assert int(res.products[0]) == 63 and res.converged.all()
    assert_top_eigenvalues(res.eigvals, eng, theta, 40, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(lanczos.eigvals, res.eigvals, rtol=2e-3, atol=0)
    warm = top_k(eng, theta, 40, k=2, v0=res.block, tol=1e-3)
    assert int(warm.products.max()) <= 6  # started at the answer: two block steps
    assert top_k(eng, theta, 40, k=2, dense_below=62).products[0] < 63  # above the limit: Lanczos


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_accuracy_is_the_argmax_count(dtype):
    """The fused validation pass: the fraction of points whose first largest logit (torch.argmax)
    is the label, against the plain forward, for the validation and the training points; no
    validation set gives NaN, as the eager engine."""
    data = blobs(53, 3, 4, seed=5)
    spec = MLPSpec(3, 17, 4)
    eng = MLPEngine(spec, data, "ce", [0.1] * 4, [1.0] * 4, [10] * 4, dtype=dtype, step="fused")
    theta = spec.init(range(4), dtype)
    for val, X, y in ((True, eng.Xv, eng.yv), (False, eng.X, eng.y)):
        want = (reference.forward(spec, theta, X).argmax(-1) == y).to(dtype).mean(1)
        assert torch.equal(eng.strategy.kernel.accuracy(theta, val), want)
    no_val = Dataset(data.X, data.y, None, None, 4, "blobs")
    eng = MLPEngine(spec, no_val, "ce", [0.1] * 4, [1.0] * 4, [10] * 4, dtype=dtype, step="fused")
    assert torch.isnan(eng.step(theta, 0)[1].val_acc).all()


def test_float32_fused_step_is_within_float32_rounding_of_float64():
    data = spiral_dataset(50, seed=0, val_seed=1)
    spec = MLPSpec(2, 40, 3)
    e64 = MLPEngine(spec, data, "dmse1", [0.5, 0.1], [3.0, 5.0], [30, 20], step="fused")
    e32 = MLPEngine(spec, data, "dmse1", [0.5, 0.1], [3.0, 5.0], [30, 20], dtype=torch.float32, step="fused")
    a = e64.advance(spec.init([0, 1]), 0, 50)
    b = e32.advance(spec.init([0, 1], torch.float32), 0, 50)
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-5)


def test_fused_steps_do_not_depend_on_the_cutting_or_the_batch():
    """Each replica and step is computed alone in one fixed order: bit for bit the same θ and
    metrics however the steps are cut into calls, and for a replica alone or inside a batch
    (what replay and resumed sweeps rely on)."""
    data = spiral_dataset(40, seed=0, val_seed=1)
    spec = MLPSpec(2, 30, 3)
    args = ("dce", [1.0, 0.5, 0.2], [70.0, 70.0, 10.0], [100, 60, 30])
    eng = MLPEngine(spec, data, *args, step="fused")
    theta0 = spec.init([0, 1, 2])
    whole, m_whole = eng.steps(theta0, 0, eng.gamma(list(range(120))), False)
    th, losses_ = theta0, []
    for a, b in zip([0, 1, 3, 40, 41], [1, 3, 40, 41, 120]):
        th, m = eng.steps(th, a, eng.gamma(list(range(a, b))), a == 0)
        losses_.append(m.loss)
    assert torch.equal(th, whole) and torch.equal(torch.cat(losses_), m_whole.loss)
    single = MLPEngine(spec, data, "dce", [0.5], [70.0], [60], step="fused")
    alone, m_alone = single.steps(theta0[1:2], 0, single.gamma(list(range(120))), False)
    assert torch.equal(alone[0], whole[1]) and torch.equal(m_alone.loss[:, 0], m_whole.loss[:, 1])
    assert torch.equal(eng.advance(theta0, 0, 120), whole)


def test_fused_threads_split_the_replicas_and_change_nothing():
    """With several threads (`--threads`) the replicas are split between them: θ, the metrics and
    the HVPs are bit for bit those of one thread, also for more threads than replicas."""
    data = spiral_dataset(30, seed=0, val_seed=1)
    spec = MLPSpec(2, 20, 3)
    eng = MLPEngine(spec, data, "dmse1", [0.5, 1.0, 0.2, 0.7, 0.1], [5.0] * 5, [30, 40, 50, 60, 70], step="fused")
    theta0 = spec.init(range(5))
    V = torch.randn(5, 3, spec.num_params, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    before = torch.get_num_threads()
    out = {}
    try:
        for n in (1, 2, 3, 8):
            torch.set_num_threads(n)
            th, m = eng.steps(theta0, 0, eng.gamma(list(range(60))), False)
            out[n] = (th, m.loss, m.train_acc, eng.hvp_block(th, 60)(V, torch.arange(5)))
    finally:
        torch.set_num_threads(before)
    for n in (2, 3, 8):
        assert all(torch.equal(a, b) for a, b in zip(out[n], out[1])), n


@pytest.mark.parametrize("loss", ["dce", "dmse2"])
def test_fused_tracks_the_eager_engine_at_the_edge_of_stability(loss):
    """The reference problem (width 100, 300 points) for 1000 steps at η = 1, A = 70, where
    rounding differences grow fastest: within 1e-12 of the eager engine in float64."""
    data = spiral_dataset(100, seed=0, val_seed=1)
    spec = MLPSpec(2, 100, 3)
    args = (loss, [1.0, 0.5], [70.0, 70.0], [400, 100])
    eng, eager = MLPEngine(spec, data, *args, step="fused"), MLPEngine(spec, data, *args)
    theta0 = spec.init([0, 1])
    a, ma = eng.steps(theta0, 0, eng.gamma(list(range(1000))), False)
    b, mb = eager.steps(theta0, 0, eager.gamma(list(range(1000))), False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(ma.loss, mb.loss, rtol=1e-11, atol=1e-13)
    assert (ma.train_acc - mb.train_acc).abs().max() <= 1 / 300  # a point on the boundary at most


def test_a_diverged_replica_stays_nan_as_in_the_eager_engine(small_data):
    spec = MLPSpec(2, 9, 3)
    eng = MLPEngine(spec, small_data, "dce", [0.5, 0.5], [2.0, 2.0], [10, 10], step="fused")
    theta = spec.init([0, 1])
    theta[0, 3] = float("nan")
    new, m = eng.step(theta, 0)
    assert torch.isnan(m.loss[0]) and torch.isnan(new[0]).any()
    assert torch.isfinite(m.loss[1]) and torch.isfinite(new[1]).all()


def test_fused_refuses_what_it_does_not_run(small_data):
    with pytest.raises(LandscapeError, match="one-hidden-layer"):
        MLPEngine(MLPSpec(2, 8, 3, depth=2), small_data, "dce", [0.5], [2.0], [10], step="fused")
    with pytest.raises(LandscapeError, match="choose one"):
        MLPEngine(MLPSpec(2, 8, 3), small_data, "dce", [0.5], [2.0], [10], step="fused_and_compile")
    with pytest.raises(LandscapeError, match="float64 and float32"):
        MLPEngine(MLPSpec(2, 8, 3), small_data, "dce", [0.5], [2.0], [10], dtype=torch.float16, step="fused")


def test_the_library_is_built_once_per_key_and_a_missing_compiler_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path))
    monkeypatch.setattr(fused, "_loaded", {})
    X, y = torch.randn(10, 2, dtype=torch.float64), torch.arange(10) % 3
    fused.FusedKernel(X, y, 3, 4, "mse", "tanh")
    (lib,) = (tmp_path / "fused").glob("*.so")
    stamp = lib.stat().st_mtime_ns
    monkeypatch.setattr(fused, "_loaded", {})
    fused.FusedKernel(X, y, 3, 4, "mse", "tanh")
    assert lib.stat().st_mtime_ns == stamp  # reused from the cache, not rebuilt
    monkeypatch.setattr(fused, "_loaded", {})
    monkeypatch.setattr(fused.shutil, "which", lambda name: None)
    with pytest.raises(LandscapeError, match="needs a C\\+\\+ compiler"):
        fused.FusedKernel(X, y, 3, 4, "dce", "relu")


def test_an_unusable_cache_folder_falls_back_to_the_temporary_folder(tmp_path, monkeypatch):
    """A cache path where no folder can be made (here: below a file; a read-only home alike)
    builds into the temporary folder instead of failing."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("LANDSCAPE_CACHE", str(tmp_path / "file" / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(fused.tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.setattr(fused, "_loaded", {})
    X, y = torch.randn(10, 2, dtype=torch.float64), torch.arange(10) % 3
    step = fused.FusedKernel(X, y, 3, 4, "dmse2", "relu")
    assert list((tmp_path / "tmp").glob("landscape-fused-*/*.so"))
    assert step(torch.zeros(1, step.num_params, dtype=torch.float64), torch.ones(1, 1, 3), torch.ones(1))[0].shape == (
        1,
        step.num_params,
    )


def _lane_math(step, which: int, x: np.ndarray) -> tuple[np.ndarray, int]:
    out = np.empty_like(x)
    flag = step._lib.landscape_lane_math(which, x.size, x.ctypes.data, out.ctypes.data)
    return out, flag


def _scalar_build(monkeypatch):
    """The build without the vector math library (as on a machine without glibc's libmvec)."""
    monkeypatch.setattr(fused, "vector_math", lambda: False)
    monkeypatch.setattr(fused, "_loaded", {})


@pytest.mark.parametrize("scalar", [False, True])
@pytest.mark.parametrize("dtype, ulps", [(torch.float64, 4), (torch.float32, 4)])
def test_lane_exp_log_tanh_are_the_math_functions(monkeypatch, scalar, dtype, ulps):
    """The softmax's exp and log and the tanh activation, by lanes (libmvec where it links, the
    scalar functions otherwise): within a few ulp of float64 math over their whole range (a tail
    off the vector length), with the special values (NaN, ±inf, underflow, log of 0 and of
    negatives) as the scalar functions give them."""
    import math

    if scalar:
        _scalar_build(monkeypatch)
    X, y = torch.randn(10, 2, dtype=dtype), torch.arange(10) % 3
    step = fused.FusedKernel(X, y, 3, 4, "dce", "tanh")
    npt = np.float64 if dtype == torch.float64 else np.float32
    rng = np.random.default_rng(0)
    lo, big = (-745.0, 300.0) if npt is np.float64 else (-103.0, 80.0)
    cases = {
        0: (np.r_[rng.uniform(lo, 0, 3001), rng.uniform(-1, 1, 1000), 0.0, -0.0], math.exp),
        1: (np.r_[rng.uniform(1, 3, 2000), np.exp(rng.uniform(-big, big, 1001)), 1.0], math.log),
        2: (np.r_[rng.uniform(-20, 20, 3001), rng.uniform(-1e-3, 1e-3, 1000), 0.0], math.tanh),
    }
    for which, (x, ref) in cases.items():
        x = x.astype(npt)
        got, flag = _lane_math(step, which, x)
        want = np.array([ref(float(v)) for v in x])
        tol = ulps * np.spacing(np.abs(want).astype(npt)).astype(np.float64)
        np.testing.assert_array_less(np.abs(got.astype(np.float64) - want), tol + np.finfo(npt).tiny)
        if scalar:
            assert flag == 0
    special = np.array([np.nan, -np.inf, np.inf, -800.0, 800.0], dtype=npt)
    got, _ = _lane_math(step, 0, special)
    np.testing.assert_array_equal(got, np.array([np.nan, 0.0, np.inf, 0.0, np.inf], dtype=npt))
    got, _ = _lane_math(step, 1, np.array([np.nan, 0.0, -1.0, np.inf], dtype=npt))
    assert np.isnan(got[0]) and got[1] == -np.inf and np.isnan(got[2]) and got[3] == np.inf
    got, _ = _lane_math(step, 2, np.array([np.nan, -np.inf, np.inf, -800.0], dtype=npt))
    np.testing.assert_array_equal(got, np.array([np.nan, -1.0, 1.0, -1.0], dtype=npt))


@pytest.mark.parametrize("loss, activation", [("dce", "relu"), ("ce", "tanh"), ("dmse1", "tanh")])
def test_the_vector_math_build_and_the_scalar_one_agree(monkeypatch, loss, activation):
    """The same 300 steps with the lane functions from libmvec and from the scalar functions:
    within rounding of each other in float64 (the loss and the gradient see a few ulp)."""
    data = spiral_dataset(30, seed=0, val_seed=1)
    spec = MLPSpec(2, 16, 3, activation=activation)
    args = (loss, [0.5, 0.5], [8.0, 3.0], [60, 40])
    theta0 = spec.init([0, 1])
    vec = MLPEngine(spec, data, *args, step="fused")
    a, ma = vec.steps(theta0, 0, vec.gamma(list(range(300))), False)
    _scalar_build(monkeypatch)
    scal = MLPEngine(spec, data, *args, step="fused")
    b, mb = scal.steps(theta0, 0, scal.gamma(list(range(300))), False)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(ma.loss, mb.loss, rtol=1e-12, atol=0)
    V = torch.randn(2, 2, spec.num_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    rows = torch.arange(2)
    torch.testing.assert_close(vec.hvp_block(a, 300)(V, rows), scal.hvp_block(a, 300)(V, rows), rtol=1e-12, atol=1e-12)


def test_a_vector_math_build_that_fails_falls_back_to_the_scalar_one(monkeypatch):
    """libmvec found but not linkable (an odd toolchain): the step is built again with the
    scalar functions, once per key, instead of failing."""
    real, tried = fused._build, []

    def build(key, source):
        tried.append(key[-1])
        if key[-1]:
            raise LandscapeError("building the fused step failed (c++): cannot find -lmvec")
        return real(key, source)

    monkeypatch.setattr(fused, "vector_math", lambda: True)
    monkeypatch.setattr(fused, "_build", build)
    monkeypatch.setattr(fused, "_loaded", {})
    X, y = torch.randn(10, 2, dtype=torch.float64), torch.arange(10) % 3
    step = fused.FusedKernel(X, y, 3, 4, "dce", "tanh")
    fused.FusedKernel(X, y, 3, 4, "dce", "tanh")
    assert tried == [True, False]  # the failure is remembered for the key
    x = np.linspace(-3.0, 0.0, 11)
    got, flag = _lane_math(step, 0, x)
    assert flag == 0 and np.allclose(got, np.exp(x), rtol=1e-15, atol=0)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_the_forward_only_evaluation_is_the_training_steps_metrics(loss, activation):
    """The views' forward-only pass (no backward, no update) gives F, the static loss and the
    training accuracy of the training step bit for bit, a diverged row NaN, and the engine's
    `evaluate_at` goes through it; input dims, classes and point counts off the block size."""
    data = blobs(37, 3, 4)
    spec = MLPSpec(3, 13, 4, activation=activation)
    eng = MLPEngine(spec, data, loss, [0.3] * 4, [4.0] * 4, [10] * 4, step="fused")
    theta = spec.init([0, 1, 2, 3])
    theta[2, 5] = float("nan")
    G = eng.gamma(3)
    k = eng.strategy.kernel
    got = k.forward(theta, G)
    _, m = k(theta, G[None], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(torch.nan_to_num(got, nan=-1.0), torch.nan_to_num(m[0], nan=-1.0))
    assert torch.isnan(got[:, 2]).all()
    ev = eng.evaluate_at(theta[[0, 1, 3]], 3, replica=0)
    f = reference.forward(spec, theta[[0, 1, 3]], eng.X)
    F = reference.losses.loss(eng.loss_name, f, eng.y, eng.Y, G[[0, 0, 0]])
    torch.testing.assert_close(ev["loss"], F, rtol=1e-13, atol=1e-15)
