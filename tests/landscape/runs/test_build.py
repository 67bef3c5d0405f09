"""Building what a config describes: the data, the network, the engine, and the checks before
anything is written (memory, top-k and bottom-k within the network, a user's model)."""

import re
from dataclasses import replace

import pytest

from landscape import LandscapeError
from landscape.config.run import RunConfig
from landscape.engines.mlp import MLPEngine
from landscape.runs import build

CFG = RunConfig(loss="dce", etas=(0.5, 1.0), seeds=(0, 1), width=6, steps=20, n_per_class=10)


def test_the_spiral_the_mlp_and_the_engine_of_a_config():
    data = build.dataset(CFG)
    assert data.X.shape == (30, 2) and data.num_classes == 3
    spec = build.mlp_spec(CFG, data)
    assert (spec.width, spec.num_params) == (6, 2 * 6 + 6 + 6 * 3 + 3) == (6, build.num_params(CFG, data))
    eng = build.engine(CFG, data)
    assert isinstance(eng, MLPEngine) and eng.R == 4 and eng.strategy.name == "eager"
    two = build.engine(CFG, data, CFG.replicas()[1:3])
    assert two.eta.tolist() == [r.eta for r in CFG.replicas()[1:3]]
    static = build.engine(replace(CFG, static_last=True, periods=(10,)), data)
    assert static.static_from.tolist() == [10] * 4  # the last period of 20 steps is static


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(top_k=40, eig_max_iter=100), "top-k (40) + eig-oversample (1) exceeds the network's 39 parameters"),
        (dict(bottom_k=40), "bottom-k (40) exceeds the network's 39 parameters"),
        (dict(seeds=tuple(range(10**6)), width=10**4), "needs about"),
    ],
)
@pytest.mark.slow
def test_what_validation_cannot_see_is_checked_before_anything_is_built(change, message):
    cfg = replace(CFG, **change)
    with pytest.raises(LandscapeError, match=re.escape(message)):
        build.check_fits(cfg, build.dataset(cfg) if "seeds" not in change else None)


def test_the_recorded_data_are_checked_against_their_digest(tmp_path):
    data = build.dataset(CFG)
    assert build.recorded_dataset(CFG, data.digest(), "run.zarr").digest() == data.digest()
    assert build.recorded_dataset(CFG, "", "run.zarr").digest() == data.digest()  # not recorded: no check
    with pytest.raises(LandscapeError, match="run.zarr: the data differ from those the run was recorded on"):
        build.recorded_dataset(CFG, "0" * 64, "run.zarr")


def test_images_need_a_model():
    import numpy as np

    from landscape.problem.data import Dataset

    images = Dataset(np.zeros((4, 3, 3)), np.arange(4) % 2, None, None, 2, "test")
    with pytest.raises(LandscapeError, match="the built-in MLP takes 2-D inputs"):
        build.mlp_spec(CFG, images)
