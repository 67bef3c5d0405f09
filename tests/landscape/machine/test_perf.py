"""keep_freed_memory: a process setting that must not change any number."""

import sys

import pytest
import torch

from landscape.config.run import RunConfig
from landscape.machine.perf import keep_freed_memory
from landscape.runs import build


def test_keep_freed_memory_is_idempotent_and_changes_no_result(small_data):
    cfg = RunConfig(etas=(0.5,), seeds=(0, 1), width=6, steps=10, n_per_class=10)
    eng = build.engine(cfg, small_data)
    theta = eng.spec.init([0, 1])
    before, _ = eng.step(theta, 0)
    first = keep_freed_memory()
    assert keep_freed_memory() == first
    after, _ = eng.step(theta, 0)
    assert torch.equal(before, after)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_on_glibc_the_setting_is_applied():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    assert keep_freed_memory() is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_a_release_and_a_keep_each_apply_and_change_no_result(small_data):
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc")
    cfg = RunConfig(etas=(0.5,), seeds=(0, 1), width=6, steps=10, n_per_class=10)
    eng = build.engine(cfg, small_data)
    theta = eng.spec.init([0, 1])
    kept, _ = eng.step(theta, 0)
    assert keep_freed_memory(False) is True
    released, _ = eng.step(theta, 0)
    assert keep_freed_memory(True) is True
    assert torch.equal(kept, released)


def test_a_recording_keeps_freed_memory_only_while_its_solver_basis_is_small():
    """The spiral's R = 64 batch (n = 603, 100 Krylov vectors: 62 MB) keeps it; a width-512
    MNIST batch (5 replicas, n = 407,050: 3.3 GB) gives big blocks back."""
    from landscape.machine.perf import keeps_freed_memory

    assert keeps_freed_memory(64, 603, 100)
    assert not keeps_freed_memory(5, 407_050, 100)
    assert keeps_freed_memory(5, 407_050, 100, itemsize=4) is False  # 1.6 GB in float32
    assert keeps_freed_memory(1, 407_050, 100, itemsize=4)  # 0.33 GB
