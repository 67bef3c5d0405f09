"""A store whose zarr.json was edited or damaged opens nowhere as if it were whole: the root
attributes, the config and the per-replica coordinates are checked against each other and
the arrays when it opens, and every command that opens it says so in one line."""

import json
import shutil

import pytest
from click.testing import CliRunner

from landscape.app.cli import main
from landscape.config.run import RunConfig
from landscape.recorders import record

CFG = RunConfig(
    loss="dce", etas=(0.5,), amplitudes=(5.0,), periods=(40,), seeds=(0,), width=8, steps=100,
    hessian_every=10, save_params_every=50, chunk_steps=50, n_per_class=10,
)  # fmt: skip


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return record(CFG, tmp_path_factory.mktemp("e") / "run.zarr")


def _attrs(fn):
    def edit(p):
        meta = json.loads((p / "zarr.json").read_text())
        fn(meta["attributes"])
        (p / "zarr.json").write_text(json.dumps(meta))

    return edit


def _config(key, value):
    def fn(a):
        c = json.loads(a["config"])
        c[key] = value
        a["config"] = json.dumps(c)

    return _attrs(fn)


EDITS = {
    "config width": (_config("width", 50), "its config says width 50, its parameters are of width 8"),
    "config loss": (_config("loss", "dmse1"), "its config and its 'loss_name' coordinate disagree"),
    "config eta": (_config("etas", [0.7]), "its config and its 'eta' coordinate disagree"),
    "diverged_at text": (_attrs(lambda a: a.update(diverged_at="x")), "attribute diverged_at"),
    "diverged_at length": (_attrs(lambda a: a.update(diverged_at=[1, 2, 3])), "one step per replica (1)"),
    "stopped_at text": (_attrs(lambda a: a.update(stopped_at=["5"])), "attribute stopped_at holds"),
    "stopped_at past the run": (_attrs(lambda a: a.update(stopped_at=[10**6])), "attribute stopped_at holds"),
    "root a list": (lambda p: (p / "zarr.json").write_text("[1, 2]"), "its zarr.json is not a Zarr group's metadata"),
    "schema text": (_attrs(lambda a: a.update(landscape_schema="one")), "landscape_schema = 'one' is not a schema"),
    "schema newer": (_attrs(lambda a: a.update(landscape_schema=99)), "upgrade landscape to read it"),
    "status unknown": (_attrs(lambda a: a.update(status="done")), "status = 'done' is none of"),
    "num_params text": (_attrs(lambda a: a.update(num_params="51")), "num_params = '51' is not a positive count"),
    "param_map off": (_attrs(lambda a: a["param_map"].pop()), "param_map counts"),
    "param_map garbled": (_attrs(lambda a: a.update(param_map=[1, 2])), "param_map is not a list of [name, shape]"),
}


@pytest.mark.parametrize("kind", list(EDITS))
@pytest.mark.parametrize(
    "command",
    [
        ["info", "STORE"],
        ["check", "STORE"],
        ["analyze", "surface", "STORE", "--at-step", "50", "--grid", "3", "--out", "OUT"],
        ["analyze", "bifurcations", "STORE", "--out", "OUT"],
        ["analyze", "pca", "STORE", "--out", "OUT"],
        ["record", "--resume", "STORE"],
    ],
)
def test_an_edited_store_is_one_line_everywhere(recorded, tmp_path, kind, command):
    edit, message = EDITS[kind]
    p = tmp_path / "run.zarr"
    shutil.copytree(recorded, p)
    edit(p)
    before = {f: f.read_bytes() for f in p.rglob("*") if f.is_file()}
    args = [{"STORE": str(p), "OUT": str(tmp_path / "o.zarr")}.get(a, a) for a in command]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, (kind, command, r.output)
    assert r.output.startswith("error: ") and r.output.count("\n") == 1 and message in r.output, r.output
    assert {f: f.read_bytes() for f in p.rglob("*") if f.is_file()} == before  # nothing changed


@pytest.mark.parametrize(
    "command, array",
    [
        (["analyze", "pca"], "params"),
        (["analyze", "interpolate", "--from-step", "0", "--to-step", "99", "--points", "3"], "params"),
        (["analyze", "surface", "--at-step", "50", "--grid", "3"], "params"),
        (["analyze", "slices", "--at-step", "50", "--grid", "3", "--follow", "2"], "params"),
        (["analyze", "density", "--at-step", "50", "--lanczos-steps", "5", "--vectors", "1"], "params"),
    ],
)
def test_a_damaged_saved_vector_is_one_line_in_the_views(recorded, tmp_path, command, array):
    """The views read the saved θ (and eigenvectors) themselves: a chunk that fails its checksum
    is one line naming the array and `landscape check`, not a codec's traceback."""
    p = tmp_path / "run.zarr"
    shutil.copytree(recorded, p)
    chunk = p / array / "c" / "0" / "1" / "0"  # step 50's saved vector
    b = bytearray(chunk.read_bytes())
    b[len(b) // 2] ^= 0xFF
    chunk.write_bytes(bytes(b))
    r = CliRunner().invoke(main, command[:2] + [str(p)] + command[2:] + ["--out", str(tmp_path / "o.zarr")])
    assert r.exit_code == 2, r.output
    assert f"is damaged: array '{array}' cannot be read" in r.output and "landscape check" in r.output, r.output
    assert r.output.count("\n") == 1


def test_a_replica_stopped_or_diverged_at_the_last_flush_opens(recorded, tmp_path):
    """A replica whose early stop (or divergence) falls on the run's last flush reads the step
    count itself (NaN from there: nothing of it recorded): the store opens; one past it does not."""
    from landscape import LandscapeError
    from landscape.runs.opened import Run

    p = tmp_path / "r.zarr"
    shutil.copytree(recorded, p)
    _attrs(lambda a: a.update(stopped_at=[CFG.steps], diverged_at=[CFG.steps]))(p)
    assert Run.open(p).steps_done == CFG.steps
    _attrs(lambda a: a.update(stopped_at=[CFG.steps + 1]))(p)
    with pytest.raises(LandscapeError, match=f"each must be a step of 0..{CFG.steps}, or -1"):
        Run.open(p)
