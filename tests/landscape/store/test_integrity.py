"""Damaged stores are found, named and refused everywhere, and never changed by the refusal."""

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from landscape import LandscapeError
from landscape.app.cli import main
from landscape.recorders import record, resume
from landscape.store.integrity import check
from landscape.store.run import RunStore, layout


@pytest.fixture(scope="module")
def intact(tmp_path_factory, tiny_cfg_module):
    return record(tiny_cfg_module, tmp_path_factory.mktemp("i") / "run.zarr")


@pytest.fixture(scope="module")
def tiny_cfg_module():
    from landscape.config.run import RunConfig

    return RunConfig(
        loss="dce",
        etas=(0.5, 1.0),
        amplitudes=(5.0,),
        periods=(40,),
        seeds=(0,),
        width=8,
        steps=200,
        hessian_every=10,
        save_params_every=50,
        chunk_steps=50,
        n_per_class=10,
    )


@pytest.fixture
def run(intact, tmp_path):
    """A copy of the recording, marked as interrupted at step 150 (so --resume would write)."""
    p = tmp_path / "run.zarr"
    shutil.copytree(intact, p)
    RunStore.open(p, mode="r+").set_attrs(status="interrupted", steps_done=150)
    return p


def digest(path: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def refused_everywhere(path: Path, message: str):
    """info/analyze/plot/--resume: exit 2, one line naming the damage; the store is unchanged."""
    before = digest(path)
    for args in (
        ["analyze", "bifurcations", str(path)],
        ["plot", "fig2", str(path), "--fig", str(path) + ".png"],
        ["record", "--resume", str(path)],
    ):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 2, (args, r.output)
        assert r.output.count("\n") == 1 and message in r.output, (args, r.output)
    assert digest(path) == before


def test_an_intact_store_reads_every_chunk(intact, tiny_cfg_module):
    rep = check(intact)
    assert rep.ok and rep.steps_done == 200
    # independent count: per time-chunked array, its chunks along time × replica (one replica chunk)
    lay = layout(tiny_cfg_module, 3, RunStore.open(intact).attrs["num_params"])
    expect = 0
    for dims, shape, chunks, _, _ in lay.values():
        t = [d for d in (dims or []) if d in ("step", "hstep", "pstep")]
        if t:
            ax = dims.index(t[0])
            expect += -(-shape[ax] // chunks[ax])
        elif dims:  # a coordinate, read whole
            expect += 1
    expect += sum(1 for f in (intact / "state" / "ckpt" / "c").rglob("*") if f.is_file())  # the resume slots
    assert rep.chunks_read == expect
    r = CliRunner().invoke(main, ["check", str(intact)])
    assert r.exit_code == 0 and "intact" in r.output


def test_a_flipped_byte_is_found_by_its_checksum(run):
    chunk = run / "loss" / "c" / "0" / "1"
    b = bytearray(chunk.read_bytes())
    b[len(b) // 2] ^= 0xFF
    chunk.write_bytes(bytes(b))
    rep = check(run)
    assert [(d.array, d.chunk, d.steps) for d in rep.damaged] == [("loss", (0, 1), (50, 99))]
    assert "checksum" in rep.damaged[0].reason
    r = CliRunner().invoke(main, ["check", str(run)])
    assert r.exit_code == 1 and "array 'loss' chunk (0, 1) (steps 50–99)" in r.output
    refused_everywhere(run, "is damaged: array 'loss' chunk (0, 1) (steps 50–99)")


@pytest.mark.parametrize("how, reason", [("delete", "chunk file missing"), ("truncate", "Error")])
def test_missing_or_truncated_chunks(run, how, reason):
    chunk = run / "eigval" / "c" / "0" / "0" / "0"
    if how == "delete":
        chunk.unlink()
    else:
        chunk.write_bytes(chunk.read_bytes()[:7])
    rep = check(run)
    assert [(d.array, d.steps) for d in rep.damaged] == [("eigval", (0, 41))] and reason in rep.damaged[0].reason
    refused_everywhere(run, "is damaged: array 'eigval'")


def test_chunks_beyond_steps_done_are_not_damage(run):
    (run / "loss" / "c" / "0" / "3").unlink()  # steps 150..199: not part of the recording at steps_done 150
    assert check(run).ok


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda p: (p / "loss" / "zarr.json").write_text((p / "loss" / "zarr.json").read_text()[:40]),
            "array 'loss' is unreadable",
        ),
        (lambda p: shutil.rmtree(p / "gamma"), "array 'gamma' is missing"),
        (lambda p: edit_attrs(p, config="{not json"), "its 'config' attribute cannot be read"),
        (lambda p: edit_attrs(p, steps_done=10**6), "steps_done = 1000000 is outside 0..200"),
    ],
)
def test_broken_metadata_is_one_line(run, damage, message):
    damage(run)
    with pytest.raises(LandscapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunStore.open(run)
    refused_everywhere(run, message)
    r = CliRunner().invoke(main, ["info", str(run)])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output


def edit_attrs(p: Path, **kw):
    meta = json.loads((p / "zarr.json").read_text())
    meta["attributes"].update(kw)
    (p / "zarr.json").write_text(json.dumps(meta))


def test_resume_after_a_refusal_and_a_repair_completes(run, intact):
    (run / "loss" / "c" / "0" / "1").unlink()
    with pytest.raises(LandscapeError, match="chunk file missing"):
        resume(run)
    shutil.copy(intact / "loss" / "c" / "0" / "1", run / "loss" / "c" / "0" / "1")  # restored from a backup
    resume(run)
    assert check(run).ok and RunStore.open(run).status == "complete"


def test_rewind_records_again_from_the_last_intact_flush(run, intact):
    import numpy as np
    import xarray as xr

    (run / "loss" / "c" / "0" / "2").unlink()  # steps 100..149 lost
    r = CliRunner().invoke(main, ["record", "--resume", str(run), "-q"])
    assert r.exit_code == 2 and "to record again from step 100" in r.output and "--rewind" in r.output
    r = CliRunner().invoke(main, ["record", "--resume", str(run), "--rewind", "-q"])
    assert r.exit_code == 0, r.output
    a, b = xr.open_zarr(intact), xr.open_zarr(run)
    assert check(run).ok and RunStore.open(run).status == "complete"
    for v in ("loss", "train_acc", "gamma", "params"):  # the trajectory: bit for bit
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    # the solver restarts cold at step 100: spectra agree to its tolerance (1e-3 relative)
    np.testing.assert_allclose(a.eigval.values, b.eigval.values, rtol=5e-3)


def test_chunks_equal_to_their_fill_value_are_written_not_reported_missing(tmp_path, tiny_cfg_module):
    """One replica with seed 0 has coordinates [0] (the int fill value) and data without a
    validation set has all-NaN val_acc (the float fill value): zarr skips such chunks unless
    told otherwise, which `check` would report as missing files."""
    from dataclasses import replace

    import numpy as np

    X = np.random.default_rng(0).normal(size=(30, 2))
    np.savez(tmp_path / "d.npz", X=X, y=np.arange(30) % 3)
    cfg = replace(tiny_cfg_module, seeds=(0,), etas=(1.0,), data=str(tmp_path / "d.npz"), steps=60)
    out = record(cfg, tmp_path / "one.zarr")
    report = check(out)
    assert report.ok, report.damaged


@pytest.mark.parametrize("slot_of", ["holding", "other"])
@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_a_damaged_resume_slot_is_found_and_rewound_over(run, slot_of, how, tmp_path):
    """The resume state is read too: a damaged slot is reported (the one a resume needs, or the
    other), `--resume` refuses in one line naming --rewind, and the rewind leaves an intact store
    that resumes to the end."""
    done = RunStore.open(run).steps_done
    files = sorted((run / "state" / "ckpt" / "c").rglob("*"))
    files = [f for f in files if f.is_file()]
    import numpy as np

    holding = [f for f in files if np.asarray(RunStore.open(run)["state/ckpt"][int(f.parts[-3])])[0, 0] == done]
    target = holding[0] if slot_of == "holding" else next(f for f in files if f not in holding)
    b = bytearray(target.read_bytes())
    if how == "truncate":
        b = b[: len(b) // 2]
    else:
        b[len(b) // 2] ^= 0xFF
    target.write_bytes(bytes(b))
    rep = check(run)
    assert [d.array for d in rep.damaged] == ["state/ckpt"], rep.damaged
    r = CliRunner().invoke(main, ["check", str(run)])
    assert r.exit_code == 1 and "state/ckpt" in r.output
    r = CliRunner().invoke(main, ["record", "--resume", str(run), "-q"])
    assert r.exit_code == 2 and "--rewind" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = CliRunner().invoke(main, ["record", "--resume", str(run), "--rewind", "-q"])
    assert r.exit_code == 0, r.output
    assert check(run).ok and RunStore.open(run).status == "complete"
