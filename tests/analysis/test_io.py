"""Reading stores for analysis and saving results beside them."""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from landscape import LandscapeError
from landscape.analysis.io import conditions, mean_sem, save_result

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def test_mean_sem_against_numpy():
    x = np.array([1.0, 2.0, np.nan, 4.0])
    m, s = mean_sem(x)
    assert m == pytest.approx(7 / 3) and s == pytest.approx(np.std([1, 2, 4], ddof=1) / np.sqrt(3))
    assert np.isnan(mean_sem([np.nan])[0]) and np.isnan(mean_sem([5.0])[1])


def test_conditions_group_every_run_once():
    runs = xr.Dataset({"eta": ("run", [0.5, 1.0, 0.5, 1.0, 0.5]), "period": ("run", [10, 10, 20, 10, 10])})
    conds = conditions(runs, ("eta", "period"))
    assert [c for c, _ in conds] == [(0.5, 10), (0.5, 20), (1.0, 10)]
    masks = np.array([m for _, m in conds])
    assert (masks.sum(axis=0) == 1).all() and masks[0].tolist() == [True, False, False, False, True]


def test_results_go_beside_the_run_or_elsewhere_never_over_a_recorded_run(tmp_path):
    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    res = xr.Dataset({"x": ("a", [1.0, 2.0])})
    assert save_result(res, run, "g") == f"{run}/g"
    assert xr.open_zarr(run, group="g").x.values.tolist() == [1.0, 2.0]
    other = tmp_path / "out.zarr"
    assert save_result(res, run, "g", other) == f"{other}/g"
    with pytest.raises(LandscapeError, match="is a recorded run"):
        save_result(res, run, "g", SHIPPED)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_run_needs_out(tmp_path):
    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    os.chmod(run, 0o555)
    try:
        with pytest.raises(LandscapeError, match="read-only"):
            save_result(xr.Dataset(), run, "g")
    finally:
        os.chmod(run, 0o755)


def test_the_target_is_checked_before_any_work(tmp_path, monkeypatch):
    """A store on a read-only mount (as root, permissions alone do not show it: the file system
    refuses new files) is refused by `analyze bifurcations` before the detection runs."""
    import errno
    import tempfile

    from click.testing import CliRunner

    import landscape.analysis.bifurcations as bif
    from landscape.app.cli import main

    ran = []
    monkeypatch.setattr(bif, "detect", lambda *a, **kw: ran.append(1))

    def read_only(*a, **kw):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    r = CliRunner().invoke(main, ["analyze", "bifurcations", str(SHIPPED)])
    assert r.exit_code == 2 and "does not accept new files (Read-only file system)" in r.output, r.output
    assert ran == [] and r.output.count("\n") == 1


@pytest.mark.parametrize("command", ["instability", "generalization"])
def test_a_summary_out_that_is_a_run_is_refused_before_the_work(tmp_path, command):
    from click.testing import CliRunner

    from landscape.app.cli import main

    run = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, run)
    r = CliRunner().invoke(main, ["analyze", command, str(SHIPPED), "--out", str(run), "--fig", str(tmp_path / "f")])
    assert r.exit_code == 2 and "is a recorded run; choose a separate output store" in r.output, r.output
    assert not list(tmp_path.glob("f*"))


def test_a_full_disk_while_saving_a_figure_is_one_line(tmp_path, monkeypatch):
    """ENOSPC from the figure writer: one line naming the file, no half-written file left."""
    import errno

    from click.testing import CliRunner
    from matplotlib.figure import Figure

    from landscape.app.cli import main

    def full(self, path, **kw):
        open(path, "wb").write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", full)
    fig = tmp_path / "f.png"
    r = CliRunner().invoke(main, ["plot", "fig1", str(SHIPPED), "--fig", str(fig)])
    assert r.exit_code == 2 and f"cannot write figure {fig}: No space left on device" in r.output, r.output
    assert not fig.exists()


def test_a_missing_store_is_named_missing_not_read_only(tmp_path):
    from landscape import LandscapeError
    from landscape.analysis.io import check_target

    with pytest.raises(LandscapeError, match=f"no store at {tmp_path / 'none.zarr'}"):
        check_target(tmp_path / "none.zarr")
