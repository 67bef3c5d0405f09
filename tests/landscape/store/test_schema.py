"""Old stores open through the migration of the version they carry: the shipped run (0.1) and
a store written by landscape 0.2 (kept in tests/data) read as current stores, are checked,
analysed, replayed and resumed; a current store says every fact itself."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from landscape import LandscapeError
from landscape.app.cli import main
from landscape.runs.opened import Run
from landscape.store import schema
from landscape.store.integrity import check
from landscape.store.run import RunStore

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "data" / "dce_w100_A70_T5000.zarr"  # landscape 0.1.0
V02 = ROOT / "tests" / "data" / "store_v0.2.zarr"  # landscape 0.2.0: dce, width 6, 60 steps


def test_the_stores_kept_are_the_versions_they_claim():
    for path, version in ((SHIPPED, "0.1.0"), (V02, "0.2.0")):
        attrs = json.loads((path / "zarr.json").read_text())["attributes"]
        assert attrs["landscape_schema"] == 1 and attrs["versions"]["landscape"] == version


@pytest.mark.parametrize(
    "path, facts",
    [
        (SHIPPED, dict(version=1, iterates=0, ckpt_vectors=2, data_digest="", param_map=(), edge=False)),
        (V02, dict(version=1, iterates=4, ckpt_vectors=3, edge=False)),
    ],
)
def test_an_old_store_reads_through_its_migration(path, facts):
    s = RunStore.open(path).schema
    for k, v in facts.items():
        assert getattr(s, k) == v, k
    assert check(path).ok


def test_a_current_store_writes_every_fact_and_needs_no_migration(tmp_path, tiny_cfg):
    from landscape.recorders import record

    path = record(tiny_cfg, tmp_path / "r.zarr")
    attrs = json.loads((path / "zarr.json").read_text())["attributes"]
    assert attrs["landscape_schema"] == schema.SCHEMA_VERSION == 3 and attrs["edge_coordinate"] is True
    assert attrs["ckpt_vectors"] == tiny_cfg.top_k + tiny_cfg.eig_oversample and attrs["iterate_signals"] == 4
    s = RunStore.open(path).schema
    assert (s.version, s.ckpt_vectors, s.iterates, s.edge) == (3, 3, 4, True) and len(s.data_digest) == 64


def test_the_migration_of_version_1_against_hand_made_attributes():
    """What version 1 lacked, filled in: from the resume slots' width, the vectors they hold."""
    base = {"landscape_schema": 1, "num_params": 10}
    assert schema.read(base, ckpt_width=1 + 10 * 3, top_k=2).ckpt_vectors == 2  # before the guard vectors
    assert schema.read(base, ckpt_width=1 + 10 * 4, top_k=2).ckpt_vectors == 3  # one guard vector
    assert schema.read(base, ckpt_width=1 + 10 * 4 + 5, top_k=2).ckpt_vectors == 2  # not a whole count
    with pytest.raises(LandscapeError, match="newer than this landscape's 3"):
        schema.read({"landscape_schema": 4})
    with pytest.raises(LandscapeError, match="ckpt_vectors = 0 is not a count"):
        schema.read({"landscape_schema": 2, "iterate_signals": 4, "ckpt_vectors": 0})


def test_version_2_reads_as_gradient_descent_with_its_threshold_computed():
    """A version-2 store trained with gradient descent: no stored threshold (`edge` False), so
    readers take 2/η; a version-3 store says it holds one."""
    v2 = {"landscape_schema": 2, "iterate_signals": 4, "ckpt_vectors": 3}
    assert schema.read(v2).edge is False
    assert schema.read({**v2, "landscape_schema": 3, "edge_coordinate": True}).edge is True


def test_the_0_2_store_is_analysed_replayed_and_resumed(tmp_path):
    """Replay reproduces its recorded losses from its saved θ; `--resume` of it (cut at step 30)
    completes with today's code and the store stays intact."""
    run = Run.open(V02)
    eng = run.engine([0])
    import torch

    th = torch.as_tensor(run.params_at([30])[0, 0])[None]
    _, m = eng.step(th, 30)
    np.testing.assert_allclose(float(m.loss[0]), float(run.ds.loss.values[0, 30]), rtol=1e-12)
    out = tmp_path / "bif.zarr"
    r = CliRunner().invoke(main, ["analyze", "bifurcations", str(V02), "--out", str(out)])
    assert r.exit_code == 0, r.output
    cut = tmp_path / "cut.zarr"
    shutil.copytree(V02, cut)
    RunStore.open(cut, mode="r+").set_attrs(status="interrupted", steps_done=30)
    r = CliRunner().invoke(main, ["record", "--resume", str(cut), "-q"])
    assert r.exit_code == 0, r.output
    assert check(cut).ok and RunStore.open(cut).status == "complete"
    a, b = RunStore.open(V02), RunStore.open(cut)
    np.testing.assert_allclose(b["loss"][...], a["loss"][...], rtol=1e-12)
