"""The store's share of a recording: every flush ends with an attribute update (`steps_done`).

Baseline: the update through a root opened without consolidated metadata (zarr then drops the
consolidated view) followed by a fresh consolidation, which reads every array's metadata
again. Now: the writer's root holds the consolidated view and zarr writes it back with the
attributes (`landscape.store.run._writer_root`). Both record the same batch into a temporary
store, interleaved in one process, one thread; the ratio is baseline time / this time.

    python bench/bench_flush.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from harness import interleaved, one_batch, ratios, record_afresh, recording, spread, threads_line

from landscape.config.run import RunConfig
from landscape.store import run as store_run

CASES = {
    "fused dce w20 R10, 40 000 steps, flush every 1000": RunConfig(
        loss="dce", width=20, step="fused", eval_every=100, hessian_every=1000, steps=40000, etas=(1.0,)
    ),
    "fused mse w100 R10, 20 000 steps, flush every 1000": RunConfig(
        loss="mse", width=100, step="fused", eval_every=100, hessian_every=1000, steps=20000, etas=(0.075,)
    ),
}


def former_root(path):
    """The baseline's writer root: opened without the consolidated view."""
    return store_run.zarr.open_group(str(path), mode="r+", use_consolidated=False)


def former_set_attrs(self, **kw):
    """The baseline's attribute update: zarr drops the view, a consolidation writes it again."""
    self.group.attrs.update(kw)
    store_run.consolidate(self.path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(threads_line())
    print("| case | now s (median) | baseline / now | peak MB now / baseline |")
    print("|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp())
    now = store_run._writer_root, store_run.RunStore.set_attrs
    try:
        for name, cfg in CASES.items():
            b = one_batch(cfg, 10)

            def go(b=b, how=now):
                store_run._writer_root, store_run.RunStore.set_attrs = how
                try:
                    record_afresh(b, tmp / "r.zarr")
                finally:
                    store_run._writer_root, store_run.RunStore.set_attrs = now

            results: dict = {}
            peaks: dict = {}
            baseline = lambda go=go: go(how=(former_root, former_set_attrs))  # noqa: E731
            runners = recording({"now": go, "baseline": baseline}, results, peaks)
            runners["now"]()  # warm: the fused step's build
            t = interleaved(runners, args.repeats)
            r = ratios(t, "baseline")["now"]
            med = sorted(t["now"])[len(t["now"]) // 2]
            print(f"| {name} | {med:.2f} | {spread(r)} | {peaks['now']:.0f} / {peaks['baseline']:.0f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
