import pytest
import torch

from landscape.config.run import RunConfig
from landscape.problem.data import spiral_dataset


@pytest.fixture(scope="session")
def small_data():
    """A 30-point spiral (10 per class): big enough to be a real problem, small for dense Hessians."""
    return spiral_dataset(n_per_class=10, seed=0, val_seed=1)


@pytest.fixture
def tiny_cfg():
    """A recording that takes a second or two: 2 seeds × 2 η, width 8, short period."""
    return RunConfig(
        loss="dce",
        etas=(0.5, 1.0),
        amplitudes=(5.0,),
        periods=(40,),
        seeds=(0, 1),
        width=8,
        steps=200,
        hessian_every=10,
        save_params_every=50,
        chunk_steps=50,
        n_per_class=10,
    )


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)
