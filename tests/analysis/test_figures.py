"""Figures are written as PNG and PDF and never change the user's matplotlib backend."""

from pathlib import Path

import pytest

matplotlib = pytest.importorskip("matplotlib")

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def test_fig2_without_slices_writes_both_formats_and_keeps_the_backend(tmp_path):
    before = matplotlib.get_backend()
    from landscape.analysis.figures import draw_fig2, fig2_series

    out = draw_fig2(tmp_path / "f.png", fig2_series(SHIPPED, replica=1))
    assert [Path(p).suffix for p in out] == [".png", ".pdf"]
    assert Path(out[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(out[1]).read_bytes()[:5] == b"%PDF-"
    assert matplotlib.get_backend() == before


def test_bad_replica_is_one_line(tmp_path):
    from landscape import LandscapeError
    from landscape.analysis.figures import fig2_series

    with pytest.raises(LandscapeError, match="replica 9 out of range"):
        fig2_series(SHIPPED, replica=9)
