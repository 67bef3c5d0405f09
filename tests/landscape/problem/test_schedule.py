import numpy as np
import pytest
import torch

from landscape.problem.schedule import gamma, static_start


def hand_gamma(t, A, T, C=3):
    """Straight from the spec, one step at a time."""
    tau, c = t % T, (t // T) % C
    w = 1 + 2 * (A - 1) * tau / T if tau < T / 2 else 2 * A - 1 - 2 * (A - 1) * tau / T
    raw = np.ones(C)
    raw[c] = w
    return C * raw / raw.sum()


def G(t, A, T, **kw):
    return gamma(t, torch.tensor(A, dtype=torch.float64), torch.tensor(T), 3, **kw)


def test_triangle_against_hand_computation():
    A, T = [70.0, 3.0, 1.0], [5000, 7, 10]
    for t in [0, 1, 3, 2500, 2501, 4999, 5000, 7500, 12500, 15000, 6, 7, 10, 20]:
        got = G(t, A, T).numpy()
        for r in range(3):
            np.testing.assert_allclose(got[r], hand_gamma(t, A[r], T[r]), rtol=1e-14)


def test_reference_values_and_properties():
    g = G(2500, [70.0], [5000]).numpy()[0]
    assert g[0] == pytest.approx(3 * 70 / 72) and g[1] == pytest.approx(3 / 72)  # 2.917, 0.0417
    assert g[0] == pytest.approx(2.9167, abs=1e-4)
    assert G(5000 * 7, [70.0], [5000]).numpy()[0] == pytest.approx([1, 1, 1])  # period boundary
    assert G(5000 + 2500, [70.0], [5000]).numpy()[0].argmax() == 1  # classes take turns
    assert G(10000 + 2500, [70.0], [5000]).numpy()[0].argmax() == 2
    assert G(15000 + 2500, [70.0], [5000]).numpy()[0].argmax() == 0
    ts = list(range(0, 20000, 37))
    np.testing.assert_allclose(G(ts, [70.0, 2.0], [5000, 300]).sum(-1).numpy(), 3.0, rtol=1e-14)


def test_vector_form_equals_scalar_form_bitwise():
    ts = list(range(0, 600, 7))
    vec = G(ts, [70.0, 3.0], [100, 33])
    for i, t in enumerate(ts):
        assert torch.equal(vec[i], G(t, [70.0, 3.0], [100, 33]))


def test_static_last_period_and_sine():
    steps, T = 1000, 300
    s = static_start(steps, T)
    assert s == 900 and static_start(900, 300) == 600
    sf = torch.tensor([s])
    assert G(950, [50.0], [T], static_from=sf).numpy()[0] == pytest.approx([1, 1, 1])
    assert G(750, [50.0], [T], static_from=sf).numpy()[0].max() > 2
    g = G(150, [5.0], [300], shape="sine").numpy()[0]
    assert g[0] == pytest.approx(3 * 5 / 7)  # sin(π/2) = 1: same peak as the triangle
    g = G(50, [5.0], [300], shape="sine").numpy()[0]
    raw = 1 + 4 * np.sin(np.pi * 50 / 300)
    assert g[0] == pytest.approx(3 * raw / (raw + 2))
