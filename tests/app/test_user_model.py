"""`landscape record --model …`: a user's network end to end, loaded by module or by file,
and bad model specs as one line."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from landscape.app.cli import main
from landscape.runs.opened import params_at
from landscape.store.run import RunStore

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--steps", "40", "--hessian-every", "10", "--save-params-every", "20", "--chunk-steps", "20", "-q"]


def digits_subset(tmp_path, n=120) -> Path:
    d = np.load(ROOT / "data" / "digits.npz")
    p = tmp_path / "digits_small.npz"
    np.savez(p, X=d["X"][:n], y=d["y"][:n], X_val=d["X_val"][:60], y_val=d["y_val"][:60])
    return p


def test_cnn_from_examples_records_replays_and_analyses(tmp_path, monkeypatch):
    """… and the model is probed once: the command prepares the run (data, checks, engine) and
    hands it to the recorder, which does not prepare it again."""
    import landscape.problem.usermodel as usermodel

    probes = []
    real = usermodel.check_model
    monkeypatch.setattr(usermodel, "check_model", lambda *a, **k: probes.append(1) or real(*a, **k))
    monkeypatch.chdir(ROOT)  # `examples.cnn` is importable from the repository root
    out = tmp_path / "cnn.zarr"
    r = CliRunner().invoke(
        main,
        [
            "record",
            "--model",
            "examples.cnn:make",
            "--model-arg",
            "channels=2",
            "--data",
            str(digits_subset(tmp_path)),
            "--loss",
            "dce",
            "--eta",
            "0.5,1",
            "-A",
            "5",
            "-T",
            "20",
            "--out",
            str(out),
        ]
        + SMALL,
    )
    assert r.exit_code == 0, r.output
    assert len(probes) == 1
    store = RunStore.open(out)
    names = [n for n, _ in store.attrs["param_map"]]
    assert names == ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc.weight", "fc.bias"]
    ds = xr.open_zarr(out)
    n = store.attrs["num_params"]
    assert n == 2 * 9 + 2 + 2 * 2 * 9 + 2 + 32 * 10 + 10 and ds.sizes["param"] == n
    assert np.isfinite(ds.eigval.values).all() and (ds.eigconv.values).all()
    # replay is bit-identical to the recorded parameters at a saved step
    np.testing.assert_array_equal(params_at(out, [20], [1])[0, 0], ds.params.isel(replica=1).sel(pstep=20).values)
    r = CliRunner().invoke(main, ["analyze", "bifurcations", str(out)])
    assert r.exit_code == 0, r.output


def test_factory_from_a_file_path(tmp_path):
    f = tmp_path / "mynet.py"
    shutil.copy(ROOT / "examples" / "cnn.py", f)
    out = tmp_path / "f.zarr"
    r = CliRunner().invoke(
        main, ["record", "--model", f"{f}:make", "--data", str(digits_subset(tmp_path)), "--out", str(out)] + SMALL
    )
    assert r.exit_code == 0, r.output
    assert RunStore.open(out).config.model == f"{f}:make"


@pytest.mark.parametrize(
    "model, message",
    [
        ("no_such_module:make", "cannot import module 'no_such_module'"),
        ("examples.cnn:nothing", "has no callable 'nothing'"),
        ("examples.cnn", "expected PKG.MODULE:FACTORY"),
        (
            "examples.cnn:DigitsCNN",
            "the model failed on the 120 training inputs of shape (120, 8, 8)",
        ),  # DigitsCNN(0): 0 channels
    ],
)
def test_bad_model_specs_are_one_line(tmp_path, monkeypatch, model, message):
    monkeypatch.chdir(ROOT)
    out = tmp_path / "bad.zarr"
    r = CliRunner().invoke(
        main, ["record", "--model", model, "--data", str(digits_subset(tmp_path)), "--out", str(out)] + SMALL
    )
    assert r.exit_code == 2 and r.output.count("\n") == 1 and message in r.output, r.output
    assert not out.exists()


def test_a_raising_factory_and_images_without_a_model(tmp_path):
    f = tmp_path / "boom.py"
    f.write_text("def make(seed):\n    raise ValueError('no GPU here')\n")
    data = str(digits_subset(tmp_path))
    r = CliRunner().invoke(main, ["record", "--model", f"{f}:make", "--data", data, "--out", str(tmp_path / "a.zarr")])
    assert r.exit_code == 2 and "raised ValueError: no GPU here" in r.output and r.output.count("\n") == 1
    r = CliRunner().invoke(main, ["record", "--data", data, "--out", str(tmp_path / "b.zarr")] + SMALL)
    assert r.exit_code == 2 and "the built-in MLP takes 2-D inputs" in r.output
    f.write_text("import torch\ndef make(seed):\n    return torch.nn.Linear(8, 5).double()\n")  # per row of 8
    r = CliRunner().invoke(main, ["record", "--model", f"{f}:make", "--data", data, "--out", str(tmp_path / "c.zarr")])
    assert r.exit_code == 2 and "returns shape (120, 8, 5)" in r.output and "(inputs, 10) logits" in r.output


def test_a_sweep_of_a_user_model(tmp_path):
    """`landscape sweep --model`: a grid of losses and η over the user's network, opened as one
    dataset, each batch equal to a plain `record` of its replicas (bit for bit)."""
    from landscape.store.sweep import index, open_sweep

    f = tmp_path / "mynet.py"
    shutil.copy(ROOT / "examples" / "cnn.py", f)
    data = str(digits_subset(tmp_path))
    common = ["--model", f"{f}:make", "--model-arg", "channels=2", "--data", data, "-A", "5", "-T", "20"]
    out = tmp_path / "s.zarr"
    r = CliRunner().invoke(
        main, ["sweep", *common, "--loss", "dce,dmse1", "--eta", "0.25,0.5", "--seeds", "2", "--out", str(out)] + SMALL
    )
    assert r.exit_code == 0, r.output
    ds = open_sweep(out)
    assert set(ds.loss_name.values) == {"dce", "dmse1"} and list(ds.eta.values) == [0.25, 0.5]
    assert np.isfinite(ds.loss.values).all() and np.isfinite(ds.eigval.values).all()
    one = tmp_path / "one.zarr"
    r = CliRunner().invoke(
        main, ["record", *common, "--loss", "dmse1", "--eta", "0.5", "--seeds", "1", "--out", str(one)] + SMALL
    )
    assert r.exit_code == 0, r.output
    got = ds.sel(loss_name="dmse1", eta=0.5, seed=0).squeeze()  # `--seeds 1`: one seed, 0
    np.testing.assert_array_equal(got.loss.values, xr.open_zarr(one).loss.isel(replica=0).values)
    assert len(index(out)[1]) == 2
    # the MLP's width axis means nothing for a user's model: refused in one line
    r = CliRunner().invoke(main, ["sweep", *common, "--width", "4,8", "--out", str(tmp_path / "w.zarr")] + SMALL)
    assert r.exit_code == 2 and "--model-arg" in r.output and not (tmp_path / "w.zarr").exists()


MISBEHAVING = """
import torch
from torch import nn


class Base(nn.Module):
    def __init__(self, hidden=4):
        super().__init__()
        self.l = nn.Linear(2, 3)


class Tuple(Base):
    def forward(self, x):
        return self.l(x), x


class Integer(Base):
    def forward(self, x):
        return self.l(x).round().long()


class Dropout(Base):
    def forward(self, x):
        return nn.functional.dropout(self.l(x), 0.5, self.training)


class Branch(Base):
    def forward(self, x):
        y = self.l(x)
        return y if y.sum() > 0 else -y


class TwoSamples(Base):
    def forward(self, x):
        return self.l(x).reshape(2, 3)


def make(seed, kind):
    torch.manual_seed(seed)
    return globals()[kind]()


def by_seed(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 4 + seed), nn.Tanh(), nn.Linear(4 + seed, 3))
"""


@pytest.mark.parametrize(
    "factory, args, message",
    [
        ("make", ["kind='Tuple'"], "forward returned a tuple, not a tensor"),
        ("make", ["kind='Integer'"], "forward returned int64 values; the losses need floating-point logits"),
        ("make", ["kind='Dropout'"], "forward draws random numbers (e.g. nn.Dropout)"),
        ("make", ["kind='Branch'"], "forward branches on a tensor's value"),
        ("make", ["kind='TwoSamples'"], "the model failed on the 300 training inputs"),
        ("by_seed", [], "the architecture changes with the seed (seed 1 has 0.weight of shape (5, 2)"),
    ],
)
def test_a_misbehaving_model_is_one_line_naming_it_before_any_store(tmp_path, factory, args, message):
    """Every model the batched engine cannot run is refused before the store exists, in one line
    that names the model and what the engine needs."""
    (tmp_path / "bad_models.py").write_text(MISBEHAVING)
    out = tmp_path / "run.zarr"
    cmd = [
        "record",
        "--model",
        f"{tmp_path / 'bad_models.py'}:{factory}",
        "--seeds",
        "2",
        "--eta",
        "0.1",
        "--out",
        str(out),
    ]
    for a in args:
        cmd += ["--model-arg", a]
    r = CliRunner().invoke(main, cmd + SMALL)
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"error: --model bad_models.py:{factory}: ") and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists()


@pytest.mark.parametrize("flag", [["--width", "50"], ["--depth", "2"], ["--activation", "tanh"]])
def test_mlp_options_with_a_model_are_refused(tmp_path, flag):
    """--width/--depth/--activation size the built-in MLP: with --model they would be stored as
    the run's width although the model ignores them."""
    (tmp_path / "bad_models.py").write_text(MISBEHAVING)
    r = CliRunner().invoke(
        main, ["record", "--model", f"{tmp_path / 'bad_models.py'}:by_seed", *flag, "--out", str(tmp_path / "r.zarr")]
    )
    assert r.exit_code == 2 and f"{flag[0]} shapes the built-in MLP; with --model the network is yours" in r.output
