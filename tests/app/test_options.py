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
    return [f"--{k.flag}", "zz"], "zz", "zz"


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
