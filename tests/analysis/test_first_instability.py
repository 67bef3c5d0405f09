"""λ1 at first instability vs η (Fig. 4) and the figure commands."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr
from click.testing import CliRunner

from landscape.analysis.bifurcations import detect
from landscape.analysis.first_instability import first_instabilities, summarize
from landscape.app.cli import main

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


@pytest.mark.slow
def test_summary_matches_a_direct_computation():
    runs = first_instabilities([SHIPPED])
    assert runs.sizes["run"] == 4
    summ = summarize(runs)
    res = detect(SHIPPED)
    for eta in (0.5, 1.0):
        lam = res.lambda1_first.values[res.eta.values == eta]
        row = summ.isel(condition=int(np.flatnonzero(summ.eta.values == eta)[0]))
        assert int(row.n_runs) == 2 and int(row.n_unstable) == 2
        assert float(row.lambda1_mean) == pytest.approx(lam.mean())
        assert float(row.lambda1_sem) == pytest.approx(np.std(lam, ddof=1) / np.sqrt(2))
        assert float(row.ratio_mean) == pytest.approx(lam.mean() * eta / 2)
        assert abs(float(row.ratio_mean) - 1) < 0.2  # edge of stability: λ1 ≈ 2/η


@pytest.mark.slow
def test_instability_command_writes_table_datasets_and_figures(tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "analyze",
            "instability",
            str(SHIPPED),
            "--fig",
            str(tmp_path / "f4.png"),
            "--out",
            str(tmp_path / "res.zarr"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "λ1/(2/η)" in r.output and r.output.count("dce") == 2
    assert (tmp_path / "f4.png").stat().st_size > 5000 and (tmp_path / "f4.pdf").stat().st_size > 1000
    summ = xr.open_zarr(tmp_path / "res.zarr", group="instability/summary", consolidated=False)
    assert summ.sizes["condition"] == 2 and set(summ.eta.values) == {0.5, 1.0}


def test_figure_commands(tmp_path):
    r = CliRunner().invoke(
        main, ["plot", "fig2", str(SHIPPED), "--slice-step", "9285", "--grid", "9", "--fig", str(tmp_path / "f2.png")]
    )
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["plot", "fig1", str(SHIPPED), "--fig", str(tmp_path / "f1.png")])
    assert r.exit_code == 0, r.output
    for name in ("f1", "f2"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000 and (tmp_path / f"{name}.pdf").exists()


def test_a_store_being_recorded_is_refused(tmp_path):
    store = tmp_path / "running.zarr"
    shutil.copytree(SHIPPED, store)
    zarr.open_group(str(store), mode="r+", use_consolidated=False).attrs["status"] = "running"
    for cmd in (
        ["analyze", "bifurcations", str(store)],
        ["analyze", "slices", str(store), "--at-step", "10"],
        ["analyze", "instability", str(store)],
        ["plot", "fig2", str(store)],
    ):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2 and "still being recorded" in r.output and r.output.count("\n") == 1, cmd


@pytest.mark.parametrize("target", ["nope.zarr", "plain"])
def test_not_a_store(tmp_path, target):
    (tmp_path / "plain").mkdir()
    for cmd in (["analyze", "bifurcations"], ["analyze", "instability"], ["plot", "fig1"]):
        r = CliRunner().invoke(main, cmd + [str(tmp_path / target)])
        assert r.exit_code == 2 and r.output.startswith("error:") and r.output.count("\n") == 1


def test_per_loss_pools_the_conditions_that_had_an_instability():
    from landscape.analysis.first_instability import per_loss

    names = np.array(["dce", "dce", "dce", "dmse1", "dmse1"], dtype=object)
    ratio = np.array([0.9, 1.0, np.nan, 0.98, np.nan])
    summ = xr.Dataset(
        {"ratio_mean": ("condition", ratio), "n_unstable": ("condition", np.array([3, 2, 0, 1, 0]))},
        coords={"condition": np.arange(5), "loss_name": ("condition", names)},
    )
    pl = per_loss(summ)
    assert list(pl.loss_name.values) == ["dce", "dmse1"]
    assert float(pl.ratio_mean[0]) == pytest.approx(0.95)
    assert float(pl.ratio_std[0]) == pytest.approx(np.std([0.9, 1.0], ddof=1))
    assert (float(pl.ratio_min[0]), float(pl.ratio_max[0])) == (0.9, 1.0)
    assert pl.n_conditions.values.tolist() == [2, 1] and pl.n_unstable.values.tolist() == [5, 1]
    assert np.isnan(float(pl.ratio_std[1]))  # one condition has no spread


def _runs(rows):
    """A runs dataset as `first_instabilities` writes it, from (optimizer, η, threshold, λ1)."""
    cols = {
        "optimizer": np.array([r[0] for r in rows], dtype=object),
        "loss_name": np.array(["dce"] * len(rows), dtype=object),
        "eta": np.array([r[1] for r in rows]),
        "amplitude": np.full(len(rows), 50.0),
        "period": np.full(len(rows), 5000),
        "threshold": np.array([r[2] for r in rows]),
        "lambda1": np.array([r[3] for r in rows]),
        "lambda1_spread": np.full(len(rows), 0.1),
        "first_instability": np.full(len(rows), 100.0),
        "unstable_from_start": np.zeros(len(rows), dtype=bool),
        "diverged": np.zeros(len(rows), dtype=bool),
    }
    return xr.Dataset({k: ("run", v) for k, v in cols.items()})


def test_runs_of_several_optimizers_are_held_against_their_own_thresholds(tmp_path):
    """Momentum at β 0.5 and 0.9 with one η are two conditions (their thresholds differ); each
    ratio is λ1 over its own threshold; gd alone keeps Fig. 4's keys and 2/η."""
    rows = [("gd", 1.0, 2.0, 1.9), ("gd", 1.0, 2.0, 1.7), ("momentum", 1.0, 3.0, 2.7), ("momentum", 1.0, 3.0, 2.9),
            ("momentum", 1.0, 3.8, 3.6), ("momentum", 1.0, 3.8, 3.4)]  # fmt: skip
    summ = summarize(_runs(rows))
    assert summ.sizes["condition"] == 3 and {"optimizer", "threshold"} <= set(summ.coords)
    for opt, edge, lam in (("gd", 2.0, (1.9, 1.7)), ("momentum", 3.0, (2.7, 2.9)), ("momentum", 3.8, (3.6, 3.4))):
        row = summ.isel(condition=int(np.flatnonzero((summ.optimizer.values == opt) & (summ.threshold == edge))[0]))
        assert float(row.ratio_mean) == pytest.approx(np.mean(lam) / edge, rel=1e-12)
        assert float(row.spread_ratio) == pytest.approx(0.1 / edge, rel=1e-12)
    gd = summarize(_runs(rows[:2]))
    assert "optimizer" not in gd.coords and float(gd.ratio_mean[0]) == pytest.approx(1.8 / 2.0, rel=1e-12)
    from landscape.analysis.figures import draw_fig4_optimizers

    paths = draw_fig4_optimizers(summ, tmp_path / "f.png")
    assert all(Path(p).stat().st_size > 1000 for p in paths)


@pytest.mark.slow
def test_heavy_ball_reaches_its_own_threshold_not_2_over_eta(tmp_path):
    """Heavy-ball momentum (β 0.5, η 1) on the spiral: the first instability comes at λ1 ≈
    (2 + 2β)/η = 3, half again above gradient descent's 2/η; the table says `edge`."""
    out = tmp_path / "hb.zarr"
    r = CliRunner().invoke(main, ["record", "--loss", "dce", "--optimizer", "momentum", "--beta", "0.5", "--eta", "1",
                                  "-A", "70", "-T", "5000", "--seeds", "2", "--steps", "6000", "--until",
                                  "first-instability", "-q", "--out", str(out)])  # fmt: skip
    assert r.exit_code == 0, r.output
    runs = first_instabilities([out])
    assert (runs.threshold.values == 3.0).all() and np.isfinite(runs.lambda1.values).all()
    ratio = runs.lambda1.values / 3.0
    assert ((ratio > 0.85) & (ratio < 1.1)).all(), ratio
    r = CliRunner().invoke(main, ["analyze", "instability", str(out), "--fig", str(tmp_path / "f.png")])
    assert r.exit_code == 0 and "λ1/edge" in r.output and "momentum" in r.output, r.output
