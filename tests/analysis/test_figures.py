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


def test_each_optimizer_at_its_edge_is_drawn_from_its_own_sharpness(tmp_path):
    """`plot edges`: a gd store (the shipped one, schema 1: its threshold 2/η), an Adam run
    recorded with --precond-k (λ(P⁻¹H) over 38/η, the stored values), and an Adam run without
    it refused in one line."""
    import numpy as np
    import xarray as xr
    from click.testing import CliRunner

    from landscape.analysis.edge_of_stability import hovering, sharpness_over_edge
    from landscape.app.cli import main

    args = "record --loss dce --optimizer adam --eta 0.003 --width 6 --n-per-class 10 --steps 100 --hessian-every 10"
    args = [*args.split(), "--save-params-every", "50", "--chunk-steps", "50", "-q"]
    adam, bare = tmp_path / "adam.zarr", tmp_path / "bare.zarr"
    assert CliRunner().invoke(main, [*args, "--precond-k", "2", "--out", str(adam)]).exit_code == 0
    assert CliRunner().invoke(main, [*args, "--out", str(bare)]).exit_code == 0
    ds = xr.open_zarr(adam)
    ratio, label = sharpness_over_edge(ds, "adam")
    np.testing.assert_allclose(ratio, ds.pre_eigval.values[:, :, 0] * 0.003 / 38, rtol=1e-12)
    assert label == "λ1(P⁻¹H)"
    h = hovering([adam])
    per = [np.median(x[np.isfinite(x)][np.isfinite(x).sum() // 2 :]) for x in ratio]  # each replica's
    assert float(h["median"][0]) == pytest.approx(per[0], rel=1e-12)
    assert h.threshold.values[0] == pytest.approx(38 / 0.003)
    r = CliRunner().invoke(main, ["plot", "edges", str(SHIPPED), str(adam), "--fig", str(tmp_path / "e.png")])
    assert r.exit_code == 0, r.output
    assert "adam" in r.output and "λ1(P⁻¹H)" in r.output and "gd" in r.output
    assert (tmp_path / "e.png").stat().st_size > 5000
    r = CliRunner().invoke(main, ["plot", "edges", str(bare), "--fig", str(tmp_path / "b.png")])
    assert r.exit_code == 2 and "record it with --precond-k" in r.output and "Traceback" not in r.output


def test_the_bifurcation_diagram_projects_on_the_dense_top_eigenvector(tmp_path):
    """x_t = (θ_t − θ_ref)·v1 with v1 of the dense float64 Hessian at the first instability (up to
    its sign); the command draws it with the windowed exponents and the multipliers' marks."""
    import numpy as np
    import torch
    from click.testing import CliRunner

    from landscape.analysis.figures import bifurcation_series
    from landscape.app.cli import main
    from landscape.config.run import RunConfig
    from landscape.recorders import record
    from landscape.runs.opened import Run
    from tests import reference

    cfg = RunConfig(loss="dmse1", etas=(0.3,), amplitudes=(50.0,), periods=(5000,), seeds=(2,), steps=800,
                    step="fused", eval_every=50, hessian_every=50, save_params_every=100, chunk_steps=400)  # fmt: skip
    p = record(cfg, tmp_path / "r.zarr")
    s = bifurcation_series(p, 0, 100, 800, exponents=50)
    ref = s.attrs["reference_step"]
    run = Run.open(p)
    theta = run.params_at(list(range(100, 800)), [0])[0]
    eng = run.engine([0])
    w, V = np.linalg.eigh(reference.dense_hessian(eng, torch.as_tensor(theta[ref - 100])[None], ref, 0))
    x = (theta - theta[ref - 100]) @ V[:, -1]
    assert np.allclose(np.abs(s.x.values), np.abs(x), rtol=1e-6, atol=1e-9)
    assert s.exponent.size == 14
    res = CliRunner().invoke(main, ["plot", "bifurcation", str(p), "--exponents", "50", "--floquet",
                                    "--fig", str(tmp_path / "b.png")])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b.png").stat().st_size > 1000 and (tmp_path / "b.pdf").exists()
