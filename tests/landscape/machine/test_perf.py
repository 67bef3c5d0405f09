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
