"""Parsing settings from command-line text and TOML values."""

import pytest

from landscape import LandscapeError
from landscape.config.knobs import knobs, parse, parse_seeds, split_values
from landscape.config.run import RunConfig

K = {k.name: k for k in knobs(RunConfig)}


@pytest.mark.parametrize(
    "text, seeds", [("5", (0, 1, 2, 3, 4)), ("3,7,9", (3, 7, 9)), ("10-12", (10, 11, 12)), ("1", (0,))]
)
def test_seed_syntax(text, seeds):
    assert parse_seeds(text) == seeds
    assert parse(K["seeds"], text) == seeds


@pytest.mark.parametrize("text", ["x", "0", "-3", "2-x"])
def test_bad_seeds(text):
    with pytest.raises(LandscapeError, match="seeds"):
        parse_seeds(text)


def test_lists_from_text_repeats_and_toml():
    assert split_values(["0.1,0.2", "0.3"], float, "eta") == (0.1, 0.2, 0.3)
    assert parse(K["etas"], ["0.5, 1", " ,"]) == (0.5, 1.0)
    assert parse(K["etas"], [0.5, 1]) == (0.5, 1.0)  # TOML list
    assert parse(K["periods"], 5000) == (5000,)  # TOML scalar for a list knob
    assert parse(K["periods"], ["1e3"]) == (1000,)
    assert parse(K["seeds"], [2, 5]) == (2, 5)  # a TOML list of seeds is the seeds themselves


@pytest.mark.parametrize(
    "name, value, msg",
    [
        ("etas", ["abc"], "eta: 'abc' is not a valid number"),
        ("periods", ["2.5"], "period: '2.5' is not a valid integer"),
        ("width", "wide", "width: 'wide' is not a valid integer"),
        ("eig_tol", "small", "eig-tol: 'small' is not a valid number"),
        ("hessian_pairs", "yes", "hessian-pairs: expected true or false"),
    ],
)
def test_bad_values_name_the_option(name, value, msg):
    with pytest.raises(LandscapeError) as e:
        parse(K[name], value)
    assert msg in str(e.value)


def test_scalars():
    assert parse(K["width"], "12") == 12 and parse(K["width"], 12.0) == 12
    assert parse(K["eig_tol"], "1e-4") == 1e-4
    assert parse(K["static_last"], True) is True
    assert parse(K["loss"], "dmse1") == "dmse1"
    assert parse(K["data"], None) is None
