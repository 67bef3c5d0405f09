"""Every `landscape reproduce` command end to end on a tiny configuration: CLI to figure and report."""

import pytest
from click.testing import CliRunner

from landscape.app.cli import main
from landscape.app.reproduce import specs


@pytest.mark.parametrize(
    "fig, images",
    [
        ("fig1", ["fig1.png", "fig1.pdf"]),
        ("fig2", ["fig2.png", "fig2.pdf"]),
        ("fig3", ["fig3a.png", "fig3a.pdf"]),
        ("fig4", ["fig4.png", "fig4.pdf"]),
    ],
)
def test_reproduce_tiny_end_to_end(tmp_path, fig, images):
    out = tmp_path / fig
    r = CliRunner().invoke(main, ["reproduce", fig, "--tiny", "--out", str(out)])
    assert r.exit_code == 0, r.output
    for name in images:
        assert (out / name).stat().st_size > 1000, name
    report = (out / "report.md").read_text()
    assert report.startswith(f"# {fig.upper()} reproduced (tiny)") and "Paper:" in report and "|---" in report
    # running it again reuses the finished sweep instead of recording anew
    r = CliRunner().invoke(main, ["reproduce", fig, "--tiny", "--out", str(out)])
    assert r.exit_code == 0, r.output


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


def test_unknown_figure():
    r = CliRunner().invoke(main, ["reproduce", "fig9"])
    assert r.exit_code == 2
