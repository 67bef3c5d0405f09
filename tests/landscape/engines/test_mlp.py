import pytest
import torch

from landscape.engines.mlp import MLPEngine
from landscape.problem.mlp import MLPSpec
from tests import reference


def test_one_step_is_plain_gradient_descent(small_data):
    spec = MLPSpec(2, 7, 3)
    eng = MLPEngine(spec, small_data, "dmse2", [0.3, 0.05], [4.0, 2.0], [10, 6])
    theta = spec.init([0, 1])
    new, m = eng.step(theta, 3)
    th = theta.clone().requires_grad_(True)
    F = reference.loss(eng, th, 3)
    (g,) = torch.autograd.grad(F.sum(), th)
    torch.testing.assert_close(
        new, theta - torch.tensor([[0.3], [0.05]], dtype=torch.float64) * g, rtol=1e-12, atol=1e-14
    )
    torch.testing.assert_close(m.loss, F.detach())
    logits = reference.forward(spec, theta, eng.X)
    acc = (logits.argmax(-1) == eng.y).double().mean(1)
    torch.testing.assert_close(m.train_acc, acc)
    assert m.gamma.shape == (2, 3)


def test_init_is_reference_and_seeded():
    spec = MLPSpec(2, 100, 3)
    assert spec.num_params == 603
    th = spec.init(range(200))
    (W1, b1), (W2, b2) = spec.unflatten(th)
    assert float(b1.abs().max()) == 0 and float(b2.abs().max()) == 0
    assert W1.std().item() == pytest.approx(1 / 2**0.5, rel=0.03)  # N(0, 1/fan_in)
    assert W2.std().item() == pytest.approx(1 / 100**0.5, rel=0.03)
    torch.testing.assert_close(spec.init([5]), spec.init([3, 5])[1:], rtol=0, atol=0)
    assert torch.equal(spec.init([5], torch.float32)[0], spec.init([5])[0].float())


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-4)])
def test_replica_alone_equals_replica_in_batch(small_data, dtype, tol):
    spec = MLPSpec(2, 16, 3)
    etas, amps, periods, seeds = [1.0, 0.5, 0.7, 1.3], [9.0, 5.0, 20.0, 2.0], [50, 30, 40, 25], [0, 1, 2, 3]
    batch = MLPEngine(spec, small_data, "dce", etas, amps, periods, dtype=dtype)
    tb = spec.init(seeds, dtype)
    for t in range(120):
        tb, mb = batch.step(tb, t)
    for r in range(4):
        alone = MLPEngine(spec, small_data, "dce", [etas[r]], [amps[r]], [periods[r]], dtype=dtype)
        ta = spec.init([seeds[r]], dtype)
        for t in range(120):
            ta, ma = alone.step(ta, t)
        torch.testing.assert_close(ta[0], tb[r], rtol=tol, atol=tol)
        torch.testing.assert_close(ma.loss[0], mb.loss[r], rtol=tol, atol=tol)


def test_advance_equals_step(small_data):
    spec = MLPSpec(2, 9, 3)
    eng = MLPEngine(spec, small_data, "dmse1", [0.8, 0.4], [6.0, 6.0], [20, 20])
    th = spec.init([0, 1])
    a = th
    for t in range(5, 60):
        a, _ = eng.step(a, t)
    assert torch.equal(eng.advance(th, 5, 60), a)  # bit for bit: replay relies on it


def test_float32_tracks_float64(small_data):
    spec = MLPSpec(2, 16, 3)
    e64 = MLPEngine(spec, small_data, "dce", [0.5], [3.0], [100])
    e32 = MLPEngine(spec, small_data, "dce", [0.5], [3.0], [100], dtype=torch.float32)
    a = e64.advance(spec.init([0]), 0, 50)
    b = e32.advance(spec.init([0], torch.float32), 0, 50)
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, rtol=1e-4, atol=1e-5)


def test_steps_is_the_loop_of_step(small_data):
    """MLPEngine.steps (S steps in one call) = S calls of step, bit for bit: θ, every metric,
    and the validation accuracy at the first step only (NaN after)."""
    spec = MLPSpec(2, 7, 3)
    eng = MLPEngine(spec, small_data, "dce", [0.5, 1.0], [5.0, 3.0], [10, 6])
    theta = spec.init([0, 1])
    got, m = eng.steps(theta, 4, eng.gamma(list(range(4, 13))), evaluate=True)
    th = theta
    for i, t in enumerate(range(4, 13)):
        th, ref = eng.step(th, t, evaluate=i == 0)
        for name in ("loss", "loss_static", "train_acc", "gamma"):
            assert torch.equal(getattr(m, name)[i], getattr(ref, name)), name
        if i == 0:
            assert torch.isfinite(m.val_acc[0]).all() and torch.equal(m.val_acc[0], ref.val_acc)
        else:
            assert torch.isnan(m.val_acc[i]).all()
    assert torch.equal(got, th)
    assert m.loss.shape == (9, 2) and m.gamma.shape == (9, 2, 3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "width, loss, dtype, tol",
    [(10, "dce", torch.float64, 1e-12), (100, "dmse2", torch.float64, 1e-12), (100, "dce", torch.float32, 1e-4)],
)
def test_compiled_segments_are_the_compiled_step_whatever_their_lengths(width, loss, dtype, tol):
    """--compile on a CPU runs a segment of steps as one scan: θ and the metrics are bit for bit
    those of the compiled single step, for any cutting of the steps into segments (lengths 1,
    2 and more, one graph for all of them), so a replay may cut differently from the recording;
    and within 1e-12 (float64) of the eager step after 300 steps at the edge of stability (η = 1, A = 70)."""
    from landscape.problem.data import spiral_dataset

    data = spiral_dataset(100, seed=0, val_seed=1)
    spec = MLPSpec(2, width, 3)
    eng = MLPEngine(spec, data, loss, [1.0, 0.5], [70.0, 70.0], [100, 60], dtype=dtype, step="compile")
    eager = MLPEngine(spec, data, loss, [1.0, 0.5], [70.0, 70.0], [100, 60], dtype=dtype)
    theta0 = spec.init([0, 1], dtype)
    one, ref, ref_loss = theta0, theta0, []
    for t in range(300):
        one, m = eng.step(one, t, evaluate=False)  # the compiled single step
        ref_loss.append(m.loss)
        ref = eager.step(ref, t, evaluate=False)[0]
    for cuts in ([0, 300], [0, 1, 3, 40, 41, 250, 300], list(range(0, 301, 25))):
        th, losses = theta0, []
        for a, b in zip(cuts[:-1], cuts[1:]):
            th, m = eng.steps(th, a, eng.gamma(list(range(a, b))), evaluate=a == 0)
            losses.append(m.loss)
        assert torch.equal(th, one), cuts
        assert torch.equal(torch.cat(losses), torch.stack(ref_loss)), cuts
    torch.testing.assert_close(one, ref, rtol=0, atol=tol)
    assert torch.equal(eng.advance(theta0, 0, 300), one)


def test_the_step_names_of_the_config_are_the_engines_strategies():
    """The names are declared twice (the config may not import the engines); they must agree."""
    from landscape.config.run import STEPS
    from landscape.engines.steps import STRATEGIES

    assert STEPS == tuple(STRATEGIES)


def test_an_unknown_loss_is_one_line_from_every_engine(small_data):
    import pytest

    from landscape import LandscapeError
    from landscape.engines.mlp import MLPEngine
    from landscape.problem.mlp import MLPSpec

    with pytest.raises(LandscapeError, match="unknown loss 'hinge'; choose one of ce, dce"):
        MLPEngine(MLPSpec(2, 4, 3), small_data, "hinge", eta=[0.1], amplitude=[1.0], period=[10])


@pytest.mark.parametrize("loss", ["ce", "dce", "mse", "dmse1", "dmse2"])
@pytest.mark.parametrize("step", ["eager", "fused"])
def test_a_views_evaluation_is_the_training_steps_metrics(small_data, loss, step):
    """`evaluate_at` (forward only; the eager engine's torch passes, the fused one's C kernel)
    at θ_t gives F_t, the static loss and both accuracies of the training step at θ_t (1e-14)."""
    from landscape.engines.fused import compiler

    if step == "fused" and compiler() is None:
        pytest.skip("the fused kernel needs a C++ compiler")
    spec = MLPSpec(2, 9, 3, depth=1 if step == "fused" else 2)
    eng = MLPEngine(spec, small_data, loss, [0.2, 0.4], [3.0, 5.0], [10, 14], step=step)
    theta = eng.advance(spec.init([0, 1]), 0, 7)
    _, m = eng.step(theta, 7)
    for r in (0, 1):
        ev = eng.evaluate_at(theta[r : r + 1], 7, replica=r)
        for name in ("loss", "loss_static", "train_acc", "val_acc"):
            torch.testing.assert_close(ev[name][0], getattr(m, name)[r], rtol=1e-14, atol=0)
