"""A missing optional dependency is one line that names the extra to install."""

import pytest

from landscape import LandscapeError
from landscape.machine.extras import require


def test_present_module_is_returned():
    assert require("json", "x", "y").dumps([1]) == "[1]"


def test_missing_module_names_the_extra():
    with pytest.raises(LandscapeError) as e:
        require("no_such_module_xyz.sub", "plot", "drawing figures")
    msg = str(e.value)
    assert msg == "drawing figures needs no_such_module_xyz, which is not installed: pip install 'landscape[plot]'"
