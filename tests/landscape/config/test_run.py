"""RunConfig: validation of every knob, the replica table, the Hessian steps, (de)serialisation."""

import json
from dataclasses import fields, replace
from pathlib import Path

import pytest

from landscape import LandscapeError
from landscape.config.knobs import knobs
from landscape.config.run import Replica, RunConfig
from landscape.runs import build


def test_defaults_are_the_papers_reference_run():
    cfg = RunConfig().validate()
    assert (cfg.loss, cfg.etas, cfg.amplitudes, cfg.periods, cfg.width) == ("dce", (1.0,), (70.0,), (5000,), 100)
    assert cfg.replicas() == (Replica(0, 1.0, 70.0, 5000),)


@pytest.mark.parametrize(
    "change, msg",
    [
        (dict(loss="hinge"), "unknown loss 'hinge'"),
        (dict(etas=()), "no value given for eta"),
        (dict(etas=(0.1, -1.0)), "eta must be > 0"),
        (dict(etas=(float("nan"),)), "eta must be > 0"),
        (dict(amplitudes=(0.5,)), "amplitude A must be >= 1"),
        (dict(periods=(1,)), "period T must be an integer from 2"),
        (dict(periods=(2.5,)), "period T must be an integer from 2"),
        (dict(seeds=(-1,)), "seeds must be integers from 0"),
        (dict(width=0), "width must be >= 1"),
        (dict(depth=0), "depth must be >= 1"),
        (dict(activation="gelu"), "unknown activation"),
        (dict(steps=0), "steps must be from 1"),
        (dict(top_k=1), "top-k must be >= 2"),
        (dict(eig_tol=0.0), "eig-tol must be between 0 and 1"),
        (dict(eig_max_iter=1), "eig-max-iter >= top-k"),
        (dict(eig_oversample=-1), "eig-oversample must be >= 0"),
        (dict(hessian_every=0), "hessian-every must be >= 1"),
        (dict(save_params_every=75), "positive multiple of hessian-every"),
        (dict(chunk_steps=30), "chunk-steps (30) must be a positive multiple"),
        (dict(gamma_shape="square"), "unknown gamma shape"),
        (dict(dtype="float16"), "dtype must be one of"),
        (dict(device="tpu"), "device"),
        (dict(until="never"), "until must be one of"),
        (dict(until_margin=-1), "until-margin must be >= 0"),
        (dict(n_per_class=1), "n-per-class must be >= 2"),
        (dict(replica_table=((0, -0.5, 2.0, 10),)), "eta must be > 0"),
        (dict(replica_table=((0, 0.5, 2.0, 1),)), "period T must be"),
        (
            dict(replica_table=((0, 0.5, 2.0, 10), (0, 0.5, 2.0, 10))),
            "replica (seed 0, eta 0.5, A 2, T 10) given twice",
        ),
        (dict(etas=(0.5, 0.5)), "eta 0.5 given twice"),
        (dict(seeds=(3, 3)), "seed 3 given twice"),
        (dict(seeds=(2**32,)), "seeds must be integers from 0 to 4294967295"),
        (dict(threads=100_000), "threads must be from 0"),
        (dict(model_args=("a=1",)), "--model-arg goes with --model"),
    ],
)
def test_every_bad_value_is_one_line(change, msg):
    with pytest.raises(LandscapeError, match=None) as e:
        replace(RunConfig(), **change).validate()
    assert msg in str(e.value) and "\n" not in str(e.value)


def test_replica_table_is_the_product_in_order_or_the_explicit_rows():
    cfg = RunConfig(seeds=(0, 1), etas=(0.5, 1.0), amplitudes=(5.0,), periods=(40, 80))
    rows = cfg.replicas()
    assert len(rows) == 8 and all(isinstance(r, Replica) for r in rows)
    expect = [(s, e, 5.0, T) for s in (0, 1) for e in (0.5, 1.0) for T in (40, 80)]
    assert [tuple(r)[:4] for r in rows] == expect
    assert {tuple(r)[4:] for r in rows} == {(0.9, 0.99, 0.9, 0.999, 1e-8)}  # the optimizer's, its defaults
    explicit = replace(cfg, replica_table=((3, 0.25, 2.0, 10), (4, 0.5, 3.0, 20)))
    assert explicit.replicas() == (Replica(3, 0.25, 2.0, 10), Replica(4, 0.5, 3.0, 20))
    assert explicit.replicas()[1].period == 20 and isinstance(explicit.replica_table[0], Replica)


@pytest.mark.parametrize("he, pairs, steps", [(50, True, 1000), (7, True, 100), (10, False, 95), (1, True, 5)])
def test_hessian_steps_match_their_definition(he, pairs, steps):
    cfg = RunConfig(hessian_every=he, hessian_pairs=pairs, steps=steps)
    # brute force: every multiple of he and, with pairs, the step after it, inside [0, steps)
    expect = sorted({t for t in range(steps) if t % he == 0 or (pairs and (t - 1) % he == 0 and t >= 1)})
    assert cfg.hessian_steps().tolist() == expect
    for a, b in ((0, steps), (1, steps // 2), (he, 3 * he + 1), (steps - 1, steps + 10)):
        assert cfg.hessian_steps(a, b).tolist() == [t for t in expect if a <= t < b]


def test_json_round_trip_keeps_every_field_and_types():
    cfg = RunConfig(
        loss="dmse2",
        etas=(0.1, 0.2),
        seeds=(3,),
        width=7,
        hessian_pairs=False,
        top_k=3,
        replica_table=((1, 0.1, 2.0, 10),),
        extra={"note": "x"},
    )
    back = RunConfig.from_json(cfg.to_json())
    assert back == cfg and isinstance(back.replica_table[0], Replica) and isinstance(back.etas, tuple)
    assert {f.name for f in fields(RunConfig)} == set(json.loads(cfg.to_json()))


def test_stores_written_before_pairs_and_guards_read_as_they_were_recorded():
    raw = json.loads(RunConfig().to_json())
    del raw["hessian_pairs"], raw["eig_oversample"]
    old = RunConfig.from_json(json.dumps(raw))
    assert old.hessian_pairs is False and old.eig_oversample == 1
    raw["learning_rate"] = 1.0
    with pytest.raises(LandscapeError, match="unknown keys: learning_rate"):
        RunConfig.from_json(json.dumps(raw))


@pytest.mark.parametrize("flags, step", [({}, "eager"), ({"compile": True}, "compile"), ({"fused": True}, "fused")])
def test_stores_written_with_the_two_step_flags_read_as_their_step(flags, step):
    raw = json.loads(RunConfig().to_json())
    del raw["step"]
    raw.update({"compile": False, "fused": False, **flags})  # what 0.2 wrote
    assert RunConfig.from_json(json.dumps(raw)).step == step


def test_a_relative_data_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = RunConfig(data="d.npz")
    assert Path(cfg.data).is_absolute() and Path(cfg.data) == tmp_path / "d.npz"


def test_every_setting_is_a_knob_with_help():
    names = {k.name for k in knobs(RunConfig)}
    assert names == {f.name for f in fields(RunConfig)} - {"replica_table", "extra"}
    assert all(k.help for k in knobs(RunConfig))


def test_engine_gets_each_replicas_schedule(small_data):
    cfg = RunConfig(etas=(0.5, 1.0), amplitudes=(3.0,), periods=(40,), seeds=(0,), width=5, static_last=True, steps=100)
    eng = build.engine(cfg, small_data)
    assert eng.eta.tolist() == [0.5, 1.0] and eng.amplitude.tolist() == [3.0, 3.0]
    one = build.engine(cfg, small_data, [cfg.replicas()[1]])
    assert one.eta.tolist() == [1.0]
