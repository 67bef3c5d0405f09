"""MLPSpec: parameter count, flat layout, and the seeded initialisation."""

import torch

from landscape.problem.mlp import MLPSpec


def test_num_params_and_layer_shapes():
    for d, w, c, depth in ((2, 100, 3, 1), (5, 7, 4, 3), (1, 1, 2, 2)):
        spec = MLPSpec(d, w, c, depth)
        dims = [d] + [w] * depth + [c]
        assert spec.num_params == sum(i * o + o for i, o in zip(dims[:-1], dims[1:]))
        assert spec.layer_shapes == list(zip(dims[:-1], dims[1:]))
    assert MLPSpec(2, 100, 3).num_params == 603  # the paper's reference network


def test_unflatten_is_a_view_in_order():
    spec = MLPSpec(3, 4, 2, depth=2)
    theta = torch.arange(2 * spec.num_params, dtype=torch.float64).reshape(2, -1)
    layers = spec.unflatten(theta)
    flat = torch.cat([torch.cat([W.reshape(2, -1), b], dim=1) for W, b in layers], dim=1)
    assert torch.equal(flat, theta)
    W0, _ = layers[0]
    assert W0.shape == (2, 3, 4) and W0[1, 0, 1] == theta[1, 1]


def test_init_per_seed_independent_of_batch_and_dtype():
    spec = MLPSpec(2, 50, 3)
    a = spec.init([3, 7])
    b = spec.init([7])
    assert torch.equal(a[1], b[0]) and not torch.equal(a[0], a[1])
    assert torch.equal(spec.init([3], dtype=torch.float32)[0], a[0].float())
    W, bias = spec.unflatten(spec.init(range(200)))[0]
    assert torch.all(bias == 0)
    # W ~ N(0, 1/fan_in): the sample variance over 200 × 100 entries is within 3 % of 1/2
    assert abs(float(W.var()) - 0.5) < 0.015
