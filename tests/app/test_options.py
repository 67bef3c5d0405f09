"""Every run knob is reachable from `record`, `sweep` and a TOML file, with the same meaning."""

from dataclasses import fields

import pytest

from landscape.app.cli import RUN_KNOBS, SWEEP_KNOBS, record, sweep
from landscape.app.options import given
from landscape.config.run import RunConfig
from landscape.config.sweep import SweepSpec, spec_from_values


def sample(k):
    """A non-default value for knob k: (command-line args, TOML value, expected field value)."""
    if k.kind is bool:
        v = not k.default
        return [f"--{k.flag}" if v else f"--no-{k.flag}"], v, v
    if k.kind is tuple:
        if k.item is str:
            return [f"--{k.flag}", "mse,dmse2"], ["mse", "dmse2"], ("mse", "dmse2")
        if k.parse == "seeds":
            return [f"--{k.flag}", "4-6"], [4, 5, 6], (4, 5, 6)
        vals = (3, 7) if k.item is int else (0.25, 0.75)
        return [f"--{k.flag}", f"{vals[0]},{vals[1]}"], list(vals), vals
    if k.kind is int:
        return [f"--{k.flag}", "17"], 17, 17
    if k.kind is float:
        return [f"--{k.flag}", "0.125"], 0.125, 0.125
    if k.choices:  # a value of its choice that is not the default
        v = next(c for c in k.choices if c != k.default)
        return [f"--{k.flag}", v], v, v
    return [f"--{k.flag}", "zz"], "zz", "zz"


@pytest.mark.parametrize("k", [k for k in RUN_KNOBS if k.choices], ids=lambda k: k.flag)
def test_a_text_knob_outside_its_choices_is_refused_on_the_line_and_in_toml(k):
    from click.testing import CliRunner

    from landscape import LandscapeError
    from landscape.app.cli import main

    r = CliRunner().invoke(main, ["record", f"--{k.flag}", "zz"])
    assert r.exit_code == 2 and "'zz' is not one of" in r.output and r.output.count("\n") == 1, r.output
    with pytest.raises(LandscapeError, match=f"{k.flag}: 'zz' is none of"):
        spec_from_values({k.key: "zz"})


def parsed(command, args):
    ctx = command.make_context(command.name, list(args))  # click consumes the list
    return ctx.params


@pytest.mark.parametrize("k", RUN_KNOBS, ids=lambda k: k.flag)
def test_run_knob_from_record_sweep_and_toml(k, tmp_path):
    args, toml, expect = sample(k)
    if k.name == "data":
        args, toml, expect = ["--data", str(tmp_path / "d.npz")], str(tmp_path / "d.npz"), str(tmp_path / "d.npz")
    rec = given(RUN_KNOBS, parsed(record, args))
    assert rec == {k.name: expect}
    spec_field = next((s.name for s in SWEEP_KNOBS if s.replaces == k.name), k.name)
    sw = given(SWEEP_KNOBS, parsed(sweep, args))
    from_toml = spec_from_values({k.key: toml})
    if spec_field == k.name:  # a run knob: it lands in the sweep's base config
        assert sw == {k.name: expect}
        assert getattr(SweepSpec().replace(**sw).base, k.name) == expect
        assert getattr(from_toml.base, k.name) == expect
    else:  # loss and width are grid axes of a sweep
        assert sw[spec_field] == (expect if isinstance(expect, tuple) else (expect,))
        assert getattr(from_toml, spec_field) == (expect if isinstance(expect, tuple) else (expect,))


def test_sweep_only_knobs_from_the_command_line_and_toml():
    sw = given(
        SWEEP_KNOBS,
        parsed(
            sweep, ["--loss", "ce", "--loss", "dce", "--width", "4,8", "--steps-per-eta", "50", "--batch-size", "3"]
        ),
    )
    spec = SweepSpec().replace(**sw)
    assert (spec.losses, spec.widths, spec.steps_per_eta, spec.batch_size) == (("ce", "dce"), (4, 8), 50.0, 3)
    toml = spec_from_values({"loss": ["ce", "dce"], "width": [4, 8], "steps_per_eta": 50, "batch_size": 3})
    assert toml == spec


def test_nothing_given_means_the_dataclass_defaults():
    assert given(RUN_KNOBS, parsed(record, [])) == {}
    assert given(SWEEP_KNOBS, parsed(sweep, [])) == {}
    names = {f.name for f in fields(RunConfig)} - {"replica_table", "extra"}
    assert names == {k.name for k in RUN_KNOBS}


def _commands(group, path=("landscape",)):
    import click

    for name, cmd in group.commands.items():
        yield (*path, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*path, name))


def test_every_option_of_every_command_has_help():
    """A user reads `--help`, not the code: no option may stand there without a word."""
    import click

    from landscape.app.cli import main

    bare = [
        f"{' '.join(path)} {p.opts[0]}"
        for path, cmd in _commands(main)
        for p in cmd.params
        if isinstance(p, click.Option) and not (p.help or "").strip()
    ]
    assert not bare, bare


@pytest.mark.parametrize("group", ["analyze", "plot", None])
def test_group_help_fits_one_screen(group):
    """The listing of a group: one line a command (not cut at "Fig."), the whole within a screen."""
    from click.testing import CliRunner

    from landscape.app.cli import main

    r = CliRunner().invoke(main, [group, "--help"] if group else ["--help"], terminal_width=80)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    listing = lines[lines.index("Commands:") + 1 :]
    assert len(lines) <= 30 and all(len(x) <= 80 for x in lines), r.output
    assert all(x.startswith("  ") and x[2] != " " for x in listing), r.output  # no wrapped line
    assert not any(x.rstrip().endswith(("Fig", "Fig.")) for x in listing), r.output


def test_short_help_keeps_abbreviations_and_cuts_at_a_word():
    from landscape.app.cli import short_help

    assert short_help("Fig. 1: mean F(t). More text.") == "Fig. 1: mean F(t)"
    assert short_help("Validation accuracy vs width (Fig. 3): mean ± s.e. over seeds.") == (
        "Validation accuracy vs width (Fig. 3): mean ± s.e. …"
    )
    assert short_help("one two three four five six seven", limit=20) == "one two three four …"
