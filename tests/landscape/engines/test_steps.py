"""The step strategies of the built-in MLP: one name each (the config's), and each strategy's
segment of steps, replay and HVP agree with the eager reference (fused and compiled to
rounding, eager bit for bit)."""

import pytest
import torch

from landscape.engines.mlp import MLPEngine
from landscape.engines.steps import STRATEGIES
from landscape.problem.mlp import MLPSpec


def test_the_strategies_are_named_by_their_step():
    assert {name: cls.name for name, cls in STRATEGIES.items()} == {n: n for n in ("eager", "compile", "fused")}


@pytest.mark.parametrize("step, tol", [("eager", 0.0), ("fused", 1e-12)])
def test_a_segment_and_its_replay_agree_with_the_eager_steps(small_data, step, tol):
    spec = MLPSpec(2, 6, 3)
    kw = dict(eta=[0.4, 0.8], amplitude=[3.0, 5.0], period=[10, 10])
    ref = MLPEngine(spec, small_data, "dce", **kw)
    eng = MLPEngine(spec, small_data, "dce", **kw, step=step)
    th = spec.init([0, 1])
    want = th
    for t in range(9):
        want, _ = ref.step(want, t)
    got, m = eng.steps(th, 0, eng.gamma(list(range(9))), True)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    torch.testing.assert_close(eng.advance(th, 0, 9), got, rtol=0, atol=0)  # replay: its own arithmetic
    V = torch.randn(2, 3, spec.num_params, dtype=torch.float64)
    rows = torch.arange(2)
    torch.testing.assert_close(eng.hvp_block(got, 9)(V, rows), ref.hvp_block(got, 9)(V, rows), rtol=1e-10, atol=1e-12)
