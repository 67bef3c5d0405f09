"""SweepSpec: a base RunConfig plus grid axes; packing, TOML, JSON."""

import itertools
import json
from pathlib import Path

import pytest

from landscape import LandscapeError
from landscape.config.knobs import knobs
from landscape.config.run import RunConfig
from landscape.config.sweep import SweepSpec, load_toml, spec_from_values, sweep_knobs


def test_replace_routes_run_knobs_to_the_base():
    s = SweepSpec().replace(losses=("dce", "mse"), etas=(0.5,), top_k=3, batch_size=4)
    assert s.losses == ("dce", "mse") and s.batch_size == 4
    assert s.base.etas == (0.5,) and s.base.top_k == 3
    assert SweepSpec().losses == (RunConfig().loss,) and SweepSpec().widths == (RunConfig().width,)


def test_batches_cover_the_grid_exactly_once():
    s = SweepSpec().replace(
        losses=("dce", "dmse1"),
        widths=(4, 6),
        etas=(0.5, 1.0, 2.0),
        amplitudes=(2.0, 5.0),
        periods=(40,),
        seeds=(0, 1, 2),
        steps_per_eta=100,
        batch_size=5,
        hessian_every=10,
    )
    batches = s.validate().batches()
    runs = [(b.loss, b.width, r.eta, r.amplitude, r.period, r.seed, b.steps) for b in batches for r in b.replicas()]
    grid = [
        (lo, w, e, a, T, sd, int(-(-100 // e)))
        for lo, w, e, a, T, sd in itertools.product(
            ("dce", "dmse1"), (4, 6), (0.5, 1.0, 2.0), (2.0, 5.0), (40,), (0, 1, 2)
        )
    ]
    assert sorted(runs) == sorted(grid) and len(runs) == s.num_runs() == 72
    assert all(len(b.replicas()) <= 5 for b in batches)
    for b in batches:  # short runs: flush and save intervals cut to the run, still multiples of hessian_every
        assert b.chunk_steps <= max(b.steps, 10) + 10 and b.chunk_steps % 10 == 0
        b.validate()


def test_empty_axes_and_bad_values_are_named():
    assert SweepSpec().replace(losses=()).losses == ("dce",)  # an empty axis falls back to the base's value
    with pytest.raises(LandscapeError, match="empty grid: no value for etas"):
        SweepSpec().replace(etas=()).validate()
    with pytest.raises(LandscapeError, match="batch-size must be >= 0"):
        SweepSpec().replace(batch_size=-1).validate()
    with pytest.raises(LandscapeError, match="width must be >= 1"):
        SweepSpec().replace(widths=(4, 0)).validate()


def test_json_round_trip_and_the_old_flat_format():
    s = SweepSpec().replace(losses=("ce",), widths=(4, 8), etas=(0.5,), seeds=(0, 1), eig_max_iter=50, data=None)
    assert SweepSpec.from_json(s.to_json()) == s
    flat = {
        "losses": ["dce"],
        "etas": [0.5],
        "amplitudes": [5.0],
        "periods": [40],
        "widths": [8],
        "seeds": [0],
        "steps": 100,
        "steps_per_eta": 0.0,
        "batch_size": 0,
        "hessian_every": 10,
        "top_k": 2,
    }
    old = SweepSpec.from_json(json.dumps(flat))
    assert old.base.etas == (0.5,) and old.widths == (8,) and old.base.hessian_every == 10


def test_toml_keys_are_the_option_names_and_data_is_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    f = tmp_path / "sub" / "s.toml"
    f.write_text(
        'loss = ["dce", "mse"]\neta = [0.5, 1.0]\nseeds = 3\nwidth = 8\neig_max_iter = 50\n'
        'depth = 2\nactivation = "tanh"\ngamma_shape = "sine"\ndata = "d.npz"\nhessian_pairs = false\n'
    )
    s = load_toml(f)
    assert s.losses == ("dce", "mse") and s.widths == (8,) and s.base.seeds == (0, 1, 2)
    assert (s.base.eig_max_iter, s.base.depth, s.base.activation, s.base.gamma_shape) == (50, 2, "tanh", "sine")
    assert Path(s.base.data) == tmp_path / "sub" / "d.npz" and s.base.hessian_pairs is False
    f.write_text("learning_rate = 1\n")
    with pytest.raises(LandscapeError, match="unknown key\\(s\\) learning_rate"):
        load_toml(f)
    f.write_text("eta = [\n")
    with pytest.raises(LandscapeError, match="not valid TOML"):
        load_toml(f)


def test_every_run_knob_is_a_sweep_knob():
    names = {k.name for k in sweep_knobs()}
    assert {k.name for k in knobs(RunConfig)} - {"loss", "width"} <= names
    assert {"losses", "widths", "steps_per_eta", "batch_size"} <= names
    # and each is settable by its key
    for k in sweep_knobs():
        spec_from_values({k.key: None})
