"""Bifurcation analysis of stores and of bare series: onsets, λ on both branches, the CLI."""

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from landscape.analysis.bifurcations import LEVELS, detect
from landscape.analysis.branches import branches_recorded, branches_replay
from landscape.app.cli import main
from landscape.config import RunConfig
from landscape.recorders import record
from landscape.replay import params_at
from tests.landscape import dynamical_systems
from tests.landscape.test_derivatives import dense_hessian

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


@pytest.fixture(scope="module")
def shipped():
    return detect(SHIPPED)


def test_shipped_dce_run_onsets_are_where_the_loss_starts_to_alternate(shipped):
    from landscape.store import open_dataset

    assert list(shipped.level.values) == list(LEVELS)
    F = open_dataset(SHIPPED).loss.values
    first = shipped.onset.sel(level="instability").values
    T = shipped.period.values[:, None]
    assert np.isfinite(first).all()
    frac = (first - shipped.cycle.values[None, :] * T) / T
    assert (frac > 0.7).all() and (frac < 1).all()  # late in each period, where Γ narrows the valley
    for r in range(F.shape[0]):
        d = np.diff(F[r])
        alt = d[:-1] * d[1:] < 0
        for t in first[r].astype(int):
            assert alt[t : t + 16].all() and not alt[t - 1]  # the first step of the alternation


@pytest.mark.slow
def test_shipped_lambda_at_onset_is_both_branches_by_replay(shipped):
    """λ1 at the onset is read at θ_t and θ_{t+1} (replayed), checked here against dense
    Hessians of the replayed parameters, and their mean is near 2/η."""
    from landscape.store import RunStore

    assert shipped.attrs["lambda_source"] == "replay"
    cfg = RunStore.open(SHIPPED).config
    eng = cfg.engine(cfg.dataset())
    r, c = 0, 1
    t = int(shipped.onset.values[r, c, 0])
    th = params_at(SHIPPED, [t, t + 1], [r])[0]
    import torch

    full = eng.spec.init([rep.seed for rep in cfg.replicas()])
    for b, step in enumerate((t, t + 1)):
        theta = full.clone()
        theta[r] = torch.as_tensor(th[b])
        w = np.linalg.eigvalsh(dense_hessian(eng, theta, step, r).numpy())[-1]
        got = (shipped.lambda1_t if b == 0 else shipped.lambda1_t1).values[r, c, 0]
        assert got == pytest.approx(w, rel=1e-6)
    ratio = shipped.lambda1.sel(level="instability") / shipped.two_over_eta
    assert (abs(ratio - 1) < 0.2).all(), ratio.values


def test_recorded_branches_never_mix_parities():
    hs = np.array([0, 1, 50, 51, 100, 101])
    ev = np.array([[1.0, 0], [2.0, 0], [1.1, 0], [2.1, 0], [1.2, 0], [2.2, 0]])
    np.testing.assert_allclose(branches_recorded(hs, ev, 74)[:, 0], [1.148, 2.148])  # even at 74, odd at 75
    np.testing.assert_allclose(branches_recorded(hs, ev, 75)[:, 0], [2.148, 1.152])  # odd at 75, even at 76


@pytest.mark.parametrize("loss,eta", [("dmse1", 0.05), ("dce", 1.0), ("dmse2", 0.1)])
def test_stable_runs_with_a_fast_gamma_have_no_instability(tmp_path, loss, eta):
    """The issue's false alarms (T = 500): the one-step differences of F never alternate
    for long, and nothing is reported."""
    cfg = RunConfig(
        loss=loss,
        etas=(eta,),
        amplitudes=(70.0,),
        periods=(500,),
        steps=1500,
        hessian_every=100,
        save_params_every=500,
        chunk_steps=500,
    )
    res = detect(record(cfg, tmp_path / "r.zarr"))
    assert np.isnan(res.onset.values).all() and np.isnan(res.first_instability.values).all()


def test_branch_replay_matches_independent_replay(tmp_path):
    cfg = RunConfig(
        loss="dce",
        etas=(1.0,),
        amplitudes=(10.0,),
        periods=(60,),
        seeds=(0, 1),
        width=8,
        steps=120,
        hessian_every=10,
        save_params_every=50,
        chunk_steps=50,
        n_per_class=10,
    )
    out = record(cfg, tmp_path / "r.zarr")
    vals = branches_replay(out, [(1, 73), (0, 20)], k=2)
    eng = cfg.engine(cfg.dataset())
    for (r, t), v in zip([(1, 73), (0, 20)], vals):
        th = eng.advance(eng.spec.init([0, 1]), 0, t)
        for b in range(2):
            w = np.linalg.eigvalsh(dense_hessian(eng, th, t + b, r).numpy())[::-1][:2]
            np.testing.assert_allclose(v[b], w, rtol=1e-7)
            th = eng.advance(th, t, t + 1) if b == 0 else th


def test_series_command_on_the_double_well(tmp_path):
    eta, F = dynamical_systems.double_well(N=200_000, eta0=0.95, eta1=1.3)
    np.save(tmp_path / "f.npy", F)
    r = CliRunner().invoke(main, ["analyze", "bifurcations", "--series", str(tmp_path / "f.npy")])
    assert r.exit_code == 0, r.output
    step = int(r.output.split("first instability at step")[1].split()[0])
    assert 1.0 <= eta[step] < 1.006
    np.savetxt(tmp_path / "f.csv", F[:1000], delimiter=",")
    r = CliRunner().invoke(main, ["analyze", "bifurcations", "--series", str(tmp_path / "f.csv")])
    assert r.exit_code == 0 and "no instability" in r.output


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--series", "missing.npy"], "does not exist"),
        ([], "give a STORE or --series"),
        (["--series", "bad.npy"], "must be 1-D"),
        (["--series", "x.json"], "must be .npy, .csv or .txt"),
    ],
)
def test_series_bad_input_is_one_line(tmp_path, monkeypatch, args, msg):
    monkeypatch.chdir(tmp_path)
    np.save("bad.npy", np.zeros((3, 3)))
    Path("x.json").write_text("[]")
    r = CliRunner().invoke(main, ["analyze", "bifurcations", *args])
    assert r.exit_code == 2 and msg in r.output and len(r.output.strip().splitlines()) == 1, r.output
