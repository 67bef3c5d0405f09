"""The density at a stored step against the dense float64 Hessian of the reference network
(603 parameters): the quadrature's moments against the same vectors' vᵀHᵏv, λ_min against
eigvalsh; and the command."""

import shutil
from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner

from landscape.analysis.spectra import density
from landscape.app.cli import main
from landscape.curvature.density import probes
from landscape.runs.opened import Run
from tests.reference import dense_hessian

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "dce_w100_A70_T5000.zarr"


def test_density_and_lambda_min_against_the_dense_hessian():
    run = Run.open(SHIPPED)
    t, M, V = 5000, 10, 3
    res = density(run, [t], replica=1, lanczos_steps=M, vectors=V, bottom_k=2)
    eng = run.engine([1])
    theta = torch.as_tensor(run.params_at([t], [1])[0])
    H = torch.as_tensor(dense_hessian(eng, theta, t, 0))
    w = torch.linalg.eigvalsh(H)
    np.testing.assert_allclose(res.lambda_min.values[0], w[:2].numpy(), atol=1e-3, rtol=0)
    v = probes([run.config.replicas()[1].seed], V, H.shape[0], salt=t)[0]
    N, W = res.nodes.values[0], res.weights.values[0]
    for k in range(2 * M):
        want = float(torch.einsum("vn,nm,vm->v", v, torch.linalg.matrix_power(H, k), v).mean())
        got = float((W * N**k).sum(-1).mean())
        assert abs(got - want) <= 1e-10 * float(w.abs().max()) ** k, k
    lam = res.lam.values
    assert abs(res.density.values[0].sum() * (lam[1] - lam[0]) - 1) < 1e-3  # a density


def test_the_command(tmp_path):
    store = tmp_path / "run.zarr"
    shutil.copytree(SHIPPED, store)
    args = ["analyze", "density", str(store), "--at-step", "1000", "--at-step", "5000", "--vectors", "2"]
    r = CliRunner().invoke(main, [*args, "--lanczos-steps", "10", "--fig", str(tmp_path / "d.png")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d.png").stat().st_size > 1000
    r = CliRunner().invoke(main, [*args, "--lanczos-steps", "1"])
    assert r.exit_code == 2 and "lanczos-steps" in r.output and r.output.count("\n") == 1
