"""What every engine shares (`ReplicaEngine`): healthy replicas, accuracy of NaN logits, Γ at
any step, several steps equal one step at a time and replay equals the recorded walk."""

import torch

from landscape.engines.base import accuracy_of, healthy
from landscape.engines.mlp import MLPEngine
from landscape.problem.mlp import MLPSpec
from landscape.problem.schedule import gamma


def _engine(data, R=3):
    spec = MLPSpec(2, 5, 3)
    eng = MLPEngine(spec, data, "dmse1", eta=[0.3] * R, amplitude=[4.0, 2.0, 6.0][:R], period=[10, 20, 30][:R])
    return eng, spec.init(list(range(R)))


def test_healthy_is_finite_and_bounded():
    th = torch.zeros(4, 3)
    th[1, 0], th[2, 2], th[3, 1] = float("nan"), float("inf"), 1e13
    assert healthy(th).tolist() == [True, False, False, False]


def test_accuracy_of_nan_logits_is_nan():
    f = torch.tensor([[[2.0, 1.0], [0.0, 3.0]], [[float("nan"), 0.0], [1.0, 0.0]]])
    acc = accuracy_of(f, torch.tensor([0, 1]))
    assert acc[0] == 1.0 and torch.isnan(acc[1])


def test_gamma_at_any_step_is_the_schedules(small_data):
    eng, _ = _engine(small_data)
    for t in (0, 7, 25):
        want = gamma(t, eng.amplitude, eng.period, 3, "triangle", None)
        torch.testing.assert_close(eng.gamma(t), want, rtol=0, atol=0)
    assert eng.gamma([0, 7, 25]).shape == (3, 3, 3)


def test_steps_equal_one_step_at_a_time_and_replay_equals_them(small_data):
    eng, th = _engine(small_data)
    one = th
    losses = []
    for t in range(12):
        one, m = eng.step(one, t)
        losses.append(m.loss)
    many, ms = eng.steps(th, 0, eng.gamma(list(range(12))), True)
    torch.testing.assert_close(many, one, rtol=0, atol=0)
    torch.testing.assert_close(ms.loss, torch.stack(losses), rtol=0, atol=0)
    torch.testing.assert_close(eng.advance(th, 0, 12), one, rtol=0, atol=0)


def test_the_engine_protocol_is_stated_and_enforced():
    """What a new engine must implement is the ABC's abstract methods; the two engines do."""
    import pytest

    from landscape.engines.base import ReplicaEngine
    from landscape.engines.module import ModuleEngine

    assert ReplicaEngine.__abstractmethods__ == {"step", "_gradient", "_logits", "logits_fn", "hvp_block", "param_map"}
    assert not MLPEngine.__abstractmethods__ and not ModuleEngine.__abstractmethods__

    class Half(ReplicaEngine):
        def step(self, theta, t, G=None, evaluate=True):
            return theta

    with pytest.raises(TypeError, match="abstract"):
        Half(None, "dce", [0.1], [1.0], [10])
