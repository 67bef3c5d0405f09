"""Long work says where it is, also into a log; a multi-day reproduce asks first."""

import io

from click.testing import CliRunner

from landscape.app.cli import main
from landscape.app.progress import StepBar
from landscape.recorders.sweep import Cost


def test_log_lines_give_position_rate_and_time_left():
    out = io.StringIO()
    bar = StepBar(1000, start=200, every=0.0, stream=out)
    for _ in range(8):
        bar(100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 8
    assert lines[0].startswith("recording: step 300/1,000 (30 %), ") and "steps/s" in lines[0] and "left" in lines[0]
    assert lines[-1].startswith("recording: step 1,000/1,000 (100 %)")
    assert bar.close() > 0


def test_log_lines_are_throttled():
    out = io.StringIO()
    bar = StepBar(10**6, every=3600.0, stream=out)
    for _ in range(1000):
        bar(1)
    assert out.getvalue() == ""  # nothing before `every` seconds …
    bar(10**6 - 1000)
    assert out.getvalue().count("\n") == 1  # … except the last step


def test_full_reproduce_needs_yes_without_a_terminal(monkeypatch, tmp_path):
    import landscape.app.reproduce as rep

    monkeypatch.setattr(
        rep, "estimate", lambda fig, size, device=None, out_dir=None: Cost(3 * 86400.0, 587_572_020, 10**9)
    )
    r = CliRunner().invoke(main, ["reproduce", "fig4", "--dir", str(tmp_path / "r")])
    assert r.exit_code == 2 and r.output.count("\n") == 1
    assert "587,572,020 run-steps, about 3.0 days" in r.output and "pass --yes" in r.output
    assert not (tmp_path / "r").exists()
