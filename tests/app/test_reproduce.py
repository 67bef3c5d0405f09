"""Every `landscape reproduce` command end to end on a tiny configuration: CLI to figure and report."""

import shutil
from pathlib import Path

import pytest
import xarray as xr
from click.testing import CliRunner

from landscape import LandscapeError
from landscape.app.cli import main
from landscape.app.paper import fig4 as paper_fig4
from landscape.app.reproduce import run, specs, summary_names


@pytest.mark.slow
@pytest.mark.parametrize(
    "fig, images",
    [
        ("fig1", ["fig1.png", "fig1.pdf"]),
        ("fig2", ["fig2.png", "fig2.pdf"]),
        ("fig3", ["fig3a.png", "fig3a.pdf"]),
        ("fig4", ["fig4.png", "fig4.pdf"]),
        ("phase", ["phase.png", "phase.pdf"]),
    ],
)
def test_reproduce_tiny_end_to_end(tmp_path, fig, images):
    out = tmp_path / fig
    r = CliRunner().invoke(main, ["reproduce", fig, "--tiny", "--dir", str(out)])
    assert r.exit_code == 0, r.output
    for name in images:
        assert (out / name).stat().st_size > 1000, name
    report = (out / "report.md").read_text()
    assert report.startswith(f"# {fig.upper()} reproduced (tiny)") and "Paper:" in report and "|---" in report
    # running it again reuses the finished sweeps: not one of their files is written again
    sweeps = [out / f"{name}.zarr" for name in specs(fig, "tiny")]
    before = stamps(sweeps)
    assert len(before) > 20
    r = CliRunner().invoke(main, ["reproduce", fig, "--tiny", "--dir", str(out)])
    assert r.exit_code == 0, r.output
    assert stamps(sweeps) == before
    assert (out / "report.md").read_text() == report


@pytest.mark.slow
@pytest.mark.parametrize("fig", ["fig1", "fig2", "fig3", "fig4", "phase"])
def test_redraw_from_the_summaries_alone(tmp_path, fig):
    """What docs/results/paper/ commits (summaries, no stores) redraws figure and report."""
    out = tmp_path / fig
    assert CliRunner().invoke(main, ["reproduce", fig, "--tiny", "--dir", str(out)]).exit_code == 0
    report = (out / "report.md").read_text()
    for store in specs(fig, "tiny"):
        shutil.rmtree(out / f"{store}.zarr")
    for image in out.glob("*.p*"):
        image.unlink()
    r = CliRunner().invoke(main, ["reproduce", fig, "--tiny", "--dir", str(out), "--redraw"])
    assert r.exit_code == 0, r.output
    assert (out / "report.md").read_text() == report
    assert any(p.stat().st_size > 1000 for p in out.glob("*.png"))
    assert not any((out / f"{s}.zarr").exists() for s in specs(fig, "tiny"))  # nothing was trained


@pytest.mark.slow
def test_a_part_finished_elsewhere_is_not_recorded_again(tmp_path):
    """A figure split over machines: a part's committed summary copied into --out (its stores
    left behind) is kept, the other parts are recorded, and the report is the same."""
    out = tmp_path / "fig4"
    assert CliRunner().invoke(main, ["reproduce", "fig4", "--tiny", "--dir", str(out)]).exit_code == 0
    report = (out / "report.md").read_text()
    first, *rest = specs("fig4", "tiny")
    for name in specs("fig4", "tiny"):
        shutil.rmtree(out / f"{name}.zarr")
    for name in rest:
        shutil.rmtree(out / f"{name}_summary.zarr")
    r = CliRunner().invoke(main, ["reproduce", "fig4", "--tiny", "--dir", str(out)])
    assert r.exit_code == 0, r.output
    assert not (out / f"{first}.zarr").exists() and all((out / f"{n}.zarr").exists() for n in rest)
    assert (out / "report.md").read_text() == report


@pytest.mark.slow
def test_the_estimate_counts_what_a_resumed_run_still_records(tmp_path):
    """Before anything is recorded: every batch's run-steps and store size (the store's own size
    formula, an independent count); after: nothing; a lost batch or a part without its summary
    counts again, a part finished elsewhere (summary without store) does not."""
    from landscape.app.reproduce import estimate
    from landscape.recorders.sweep import plan
    from landscape.runs import build
    from landscape.store.run import nbytes

    out = tmp_path / "fig4"
    wanted = specs("fig4", "tiny")
    per_sweep = {}
    for name, spec in wanted.items():
        batches = plan(spec)
        data = build.dataset(batches[0])
        per_sweep[name] = [
            (b.steps * len(b.replicas()), nbytes(b, data.num_classes, build.num_params(b, data))) for b in batches
        ]
    before = estimate("fig4", "tiny", out_dir=out)
    assert before.run_steps == sum(s for v in per_sweep.values() for s, _ in v) > 0
    assert before.store_bytes == sum(n for v in per_sweep.values() for _, n in v) and before.seconds > 0
    assert estimate("fig4", "tiny").run_steps == before.run_steps  # no --out yet: the same count

    assert CliRunner().invoke(main, ["reproduce", "fig4", "--tiny", "--dir", str(out)]).exit_code == 0
    after = estimate("fig4", "tiny", out_dir=out)
    assert (after.run_steps, after.store_bytes, after.seconds) == (0, 0, 0.0)

    (name,) = wanted
    shutil.rmtree(out / f"{name}.zarr" / "b000")  # one batch lost: the resumed run records it again
    lost = estimate("fig4", "tiny", out_dir=out)
    assert (lost.run_steps, lost.store_bytes) == per_sweep[name][0]
    shutil.rmtree(out / f"{name}.zarr")  # a part finished elsewhere: its summary is here, its store is not
    assert estimate("fig4", "tiny", out_dir=out).run_steps == 0
    shutil.rmtree(out / f"{name}_summary.zarr")  # neither summary nor store: all of it again
    assert estimate("fig4", "tiny", out_dir=out).run_steps == before.run_steps


def test_free_space_is_named_only_when_the_stores_may_not_fit(tmp_path):
    from landscape.app.cli import _free_space

    assert _free_space(str(tmp_path / "new" / "dir"), 1) == ""
    line = _free_space(str(tmp_path / "new" / "dir"), 10**18)
    assert "GB free there: it may not fit" in line and "\n" not in line


def test_redraw_without_summaries_is_one_line(tmp_path):
    for fig, why in (("fig3", "missing"), ("fig2", "missing")):
        r = CliRunner().invoke(main, ["reproduce", fig, "--tiny", "--dir", str(tmp_path / "none"), "--redraw"])
        assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "none").exists()


def stamps(paths):
    return {str(p): p.stat().st_mtime_ns for d in paths for p in d.rglob("*") if p.is_file()}


def test_quick_sizes_are_what_the_docs_promise():
    f3 = specs("fig3", "quick")["fig3a"]
    assert min(f3.widths) <= 10 and len(f3.widths) >= 3 and f3.losses == ("ce", "dce") and f3.base.static_last
    f4 = specs("fig4", "quick")
    assert {s.losses[0] for s in f4.values()} == {"dce", "dmse1", "dmse2"}
    assert all(len(s.base.etas) >= 3 for s in f4.values())
    full = specs("fig4", "full")["fig4_dce"]
    assert (
        full.base.amplitudes == (25.0, 50.0, 75.0) and full.base.periods == (5000, 10000) and len(full.base.seeds) == 30
    )
    assert full.steps_for(0.5) == 200000


def test_full_sizes_are_the_papers_counts():
    f3 = specs("fig3", "full")
    a, parts = f3["fig3a"], [f3[f"fig3b_{loss}"] for loss in ("mse", "dmse1", "dmse2")]
    assert len(f3) == 4  # panel (b): one part per loss, the same grid otherwise
    b = parts[0]
    assert all(p.replace(losses=b.losses) == b for p in parts) and [p.losses for p in parts] == [
        ("mse",),
        ("dmse1",),
        ("dmse2",),
    ]
    assert len(a.base.seeds) == 50 and len(b.base.seeds) == 10 and a.base.etas == (1.0,) and b.base.etas == (0.075,)
    assert min(a.widths) == 5 and 400 in a.widths and max(b.widths) >= 400 and a.base.static_last
    assert a.base.steps >= 100000 and b.base.steps >= 1000000 and b.base.static_last
    f1 = specs("fig1", "full")["fig1"]
    assert len(f1.base.seeds) == 20 and f1.widths == (10, 30, 100) and f1.base.etas == (0.5, 1.0)
    for s in (a, b, f1):
        assert s.base.step == "fused"


@pytest.mark.slow
def test_fig3_panel_b_drawn_from_its_parts_is_the_one_sweep_panel(tmp_path):
    """The parts of panel (b), one summary per loss, give the report and the figure that one
    summary of all losses gives."""
    from landscape.app.paper import fig3
    from landscape.app.paper.common import open_summary, write_summary

    whole, parts = tmp_path / "whole", tmp_path / "parts"
    r = CliRunner().invoke(main, ["reproduce", "fig3", "--tiny", "--dir", str(whole)])
    assert r.exit_code == 0, r.output
    summ = open_summary(whole / "fig3a_summary.zarr")
    assert sorted(set(summ.loss_name.values)) == ["ce", "dce"] and summ.sizes["condition"] == 4
    parts.mkdir()
    for loss, name in (("ce", "fig3b_mse"), ("dce", "fig3b_dmse1")):
        write_summary(summ.isel(condition=summ.loss_name.values == loss), parts / f"{name}_summary.zarr")
    write_summary(summ, whole / "fig3b_summary.zarr")
    assert fig3.panels(["fig3a", "fig3b_mse", "fig3b_dmse1", "fig3b_long"]) == {
        "fig3a": ["fig3a"],
        "fig3b": ["fig3b_mse", "fig3b_dmse1"],
        "fig3b_long": ["fig3b_long"],
    }
    merged = fig3.open_panel(parts, ["fig3b_dmse1", "fig3b_mse"])  # any order of the parts
    xr.testing.assert_identical(merged.drop_attrs(), summ.drop_attrs())
    assert fig3.report(parts, ["fig3b_mse", "fig3b_dmse1"]) == fig3.report(whole, ["fig3b"])
    assert "train drift, last fifth (period means)" in fig3.report(whole, ["fig3b"])
    assert "Converged (|drift| and |settle|" in fig3.report(whole, ["fig3b"])


def test_scaled_sizes_keep_the_papers_grids():
    """--scaled: the paper's grids with at least 10 and 8 seeds."""
    f3 = specs("fig3", "scaled")
    a, b = f3["fig3a"], f3["fig3b"]
    assert a.losses == ("ce", "dce") and a.base.etas == (1.0,) and len(a.base.seeds) >= 16
    assert b.losses == ("mse", "dmse1", "dmse2") and b.base.etas == (0.075,) and len(b.base.seeds) >= 8
    for s in (a, b):
        assert s.base.static_last and min(s.widths) <= 5 and max(s.widths) >= 200
    for name, s in specs("fig4", "scaled").items():
        assert s.base.amplitudes == (25.0, 50.0, 75.0) and s.base.periods == (5000, 10000)
        assert len(s.base.seeds) >= 10 and s.base.until == "first-instability" and s.widths == (100,)
        assert s.base.etas == paper_fig4.ETAS[name.split("_")[1]]
    f1 = specs("fig1", "scaled")["fig1"]
    assert f1.widths == (10, 30, 100) and f1.base.etas == (0.5, 1.0) and f1.losses == ("ce",)
    long = specs("fig1", "scaled")["fig1_long"]  # the widest net, long enough to leave the edge
    assert long.widths == (100,) and long.base.etas == (0.5, 1.0) and long.base.steps >= 4 * f1.base.steps
    long3 = f3["fig3b_long"]  # panel (b)'s widest nets, longer: a panel of its own (other length)
    assert long3.replace(widths=b.widths, steps=b.base.steps) == b and long3.base.steps > b.base.steps
    assert summary_names("fig3", f3) == ["fig3a_summary.zarr", "fig3b_summary.zarr", "fig3b_long_summary.zarr"]


def test_unknown_figure_or_size(tmp_path):
    r = CliRunner().invoke(main, ["reproduce", "fig9"])  # the command's choices
    assert r.exit_code == 2 and "fig9" in r.output
    # the project's own check, for callers of the function: nothing is written
    with pytest.raises(LandscapeError, match="unknown figure 'fig9'"):
        run("fig9", "tiny", tmp_path / "out")
    with pytest.raises(LandscapeError, match="size must be one of full, scaled, quick, tiny"):
        run("fig4", "huge", tmp_path / "out")
    assert not (tmp_path / "out").exists()


PAPER = Path(__file__).resolve().parents[2] / "docs" / "results" / "paper"
SCALED = sorted(p for p in PAPER.glob("fig*") if p.is_dir())
FULL = sorted(p for p in (PAPER / "full").iterdir() if p.is_dir())


@pytest.mark.parametrize("fig_dir", SCALED + FULL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_paper_results_redraw(tmp_path, fig_dir):
    """Every committed report is what `reproduce --scaled/--full --redraw` writes from the
    summaries beside it; a full-size figure whose parts are still running is refused, naming
    exactly the parts it lacks."""
    size = "full" if fig_dir.parent.name == "full" else "scaled"
    out = tmp_path / fig_dir.name
    shutil.copytree(fig_dir, out)
    wanted = specs(fig_dir.name, size)
    missing = [n for n in summary_names(fig_dir.name, wanted, out) if not (out / n).exists()]
    if missing:
        assert not (fig_dir / "report.md").exists()
        with pytest.raises(LandscapeError, match="missing") as err:
            run(fig_dir.name, size, out, redraw=True)
        assert sorted(str(err.value).split("missing ")[1].split(", ")) == sorted(str(out / n) for n in missing)
        return
    (out / "report.md").unlink()
    run(fig_dir.name, size, out, redraw=True)
    body = lambda p: p.read_text().split("\n", 3)[3]  # after the title and the Rebuild line
    assert body(out / "report.md") == body(fig_dir / "report.md")
    pngs = list(out.glob("*.png"))  # one per panel or run length (fig3a, fig3b, fig1_long, …)
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)


@pytest.mark.parametrize("fig", ["fig1", "fig2", "fig3", "fig4"])
def test_the_full_grids_run_on_a_gpu_with_the_eager_step(monkeypatch, fig):
    """`reproduce --device cuda` runs the paper's grids: the fused step, which runs on the CPU
    only, gives way to the eager one there, and nothing else of the grid changes; on the CPU a
    figure keeps its step."""
    from landscape.app.reproduce import on_device
    from landscape.config.run import RunConfig

    monkeypatch.setattr(RunConfig, "check_device", lambda self: None)  # as on a machine with a GPU
    for spec in specs(fig, "full").values():
        gpu = on_device(spec, "cuda")
        gpu.validate()
        assert gpu.base.device == "cuda" and gpu.base.step in ("eager", spec.base.step)
        assert gpu.replace(device=spec.base.device, step=spec.base.step) == spec
        if spec.base.step == "fused":
            assert gpu.base.step == "eager"
            with pytest.raises(LandscapeError, match="CPU only"):
                spec.replace(device="cuda").validate()
        assert on_device(spec, "cpu") == spec.replace(device="cpu")
        assert on_device(spec, None) == spec
