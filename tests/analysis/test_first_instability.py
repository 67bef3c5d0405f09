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
