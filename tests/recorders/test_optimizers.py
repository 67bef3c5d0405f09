"""Recording with every optimizer: the stored run is `torch.optim` applied replica by replica
in a plain loop (float64, autograd of the plain forward pass), its state is saved beside θ,
a crash and resume changes nothing, and replay from a saved step carries the state on."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import xarray as xr
from torch import nn

from landscape import LandscapeError
from landscape.config.run import RunConfig
from landscape.problem import losses
from landscape.problem.optimizers import OPTIMIZERS
from landscape.runs import build
from landscape.runs.opened import Run
from recorders.record import record, resume
from tests.reference import forward

BASE = RunConfig(
    loss="dce",
    etas=(0.05, 0.1),
    amplitudes=(5.0,),
    periods=(60,),
    seeds=(0, 1),
    width=6,
    n_per_class=15,
    steps=240,
    hessian_every=40,
    save_params_every=80,
    chunk_steps=80,
    betas=(0.8,),
    alphas=(0.95,),
    beta1s=(0.85,),
    beta2s=(0.99,),
    epsilons=(1e-6,),
)
TORCH = {  # torch.optim for one replica (a row of the replica table: its η and hyper-parameters)
    "gd": lambda p, r: torch.optim.SGD(p, lr=r.eta, foreach=False),
    "momentum": lambda p, r: torch.optim.SGD(p, lr=r.eta, momentum=r.beta, foreach=False),
    "nesterov": lambda p, r: torch.optim.SGD(p, lr=r.eta, momentum=r.beta, nesterov=True, foreach=False),
    "rmsprop": lambda p, r: torch.optim.RMSprop(p, lr=r.eta, alpha=r.alpha, eps=r.eps, foreach=False),
    "adam": lambda p, r: torch.optim.Adam(p, lr=r.eta, betas=(r.beta1, r.beta2), eps=r.eps, foreach=False),
}
ETAS = {"rmsprop": (0.002, 0.005), "adam": (0.002, 0.005)}  # steps of about η each: smaller
STATE = {"momentum_buffer": "v", "square_avg": "s", "exp_avg": "m", "exp_avg_sq": "s"}  # torch's → ours


def stop_after(n: int):
    """A progress callback that interrupts the recording (as Ctrl-C does) after n steps."""
    done = [0]

    def progress(k):
        done[0] += k
        if done[0] > n:
            raise KeyboardInterrupt

    return progress


def make(seed: int, width: int = 6) -> nn.Module:
    """A user's model (the module engine's path) for the spiral: 2 → width → 3, tanh."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(2, width), nn.Tanh(), nn.Linear(width, 3)).double()


def torch_loop(cfg: RunConfig, steps: int):
    """Each replica alone under torch.optim: θ_t (R, steps + 1, n), F_t (R, steps) and the
    optimizer's state {ours: (R, steps + 1, n)} (zero before the first step)."""
    data = build.dataset(cfg)
    eng = build.engine(cfg, data)
    theta0 = eng.init([r.seed for r in cfg.replicas()])
    R, n = theta0.shape
    thetas, Fs = np.empty((R, steps + 1, n)), np.empty((R, steps))
    states: dict[str, np.ndarray] = {}
    for r, rep in enumerate(cfg.replicas()):
        if cfg.model:
            module = make(rep.seed)
            params = list(module.parameters())
            f_of = lambda module=module: module(eng.X)[None]  # noqa: E731
            flat = lambda params=params: torch.cat([p.detach().reshape(-1) for p in params])  # noqa: E731
        else:
            th = theta0[r].clone().requires_grad_()
            params = [th]
            f_of = lambda th=th: forward(eng.spec, th[None], eng.X)  # noqa: E731
            flat = lambda th=th: th.detach().clone()  # noqa: E731
        opt = TORCH[cfg.optimizer](params, rep)
        thetas[r, 0] = flat().numpy()
        for t in range(steps):
            opt.zero_grad()
            F = losses.loss(cfg.loss, f_of(), eng.y, eng.Y, eng.gamma(t)[r : r + 1])[0]
            F.backward()
            Fs[r, t] = float(F.detach())
            opt.step()
            thetas[r, t + 1] = flat().numpy()
            for key, ours in STATE.items():
                bufs = [opt.state[p].get(key) for p in params]
                if bufs[0] is not None:
                    arr = states.setdefault(ours, np.zeros((R, steps + 1, n)))
                    arr[r, t + 1] = torch.cat([b.reshape(-1) for b in bufs]).numpy()
    return thetas, Fs, states


CASES = (
    [(o, "dce", 240, None) for o in OPTIMIZERS]
    + [(o, "dmse1", 240, "fused") for o in OPTIMIZERS]
    + [
        ("adam", "dmse1", 240, "module"),
        ("nesterov", "dce", 240, "module"),
        ("momentum", "dce", 240, "compile"),
        ("momentum β 0.5,0.9", "dce", 240, None),
        ("adam β1 0.8,0.9", "dmse1", 240, "fused"),
        pytest.param("adam", "dmse1", 240, "compile", marks=pytest.mark.slow),
        pytest.param("rmsprop", "dce", 240, "compile", marks=pytest.mark.slow),
        pytest.param("momentum", "dmse1", 2000, None, marks=pytest.mark.slow),
        pytest.param("adam", "dce", 2000, None, marks=pytest.mark.slow),
        pytest.param("nesterov", "dce", 2000, "fused", marks=pytest.mark.slow),
        pytest.param("adam", "dmse2", 2000, "fused", marks=pytest.mark.slow),
    ]
)


@pytest.mark.parametrize("opt, loss, steps, model", CASES)
def test_the_recording_is_torch_optim_replica_by_replica(tmp_path, opt, loss, steps, model):
    """Loss at every step, θ and the optimizer's state at every saved step, and θ replayed at
    steps between the saved ones, against torch.optim (1e-12): the eager step, the fused C++
    step (`model` "fused"), the compiled one ("compile") and a user's model through the module
    engine ("module")."""
    hyper = {}
    if " " in opt:  # a hyper-parameter swept as a replica coordinate, like η: one batch, all values
        opt, name, values = opt.split()
        hyper = {{"β": "betas", "β1": "beta1s"}[name]: tuple(float(v) for v in values.split(","))}
    cfg = replace(BASE, optimizer=opt, loss=loss, steps=steps, etas=ETAS.get(opt, BASE.etas), **hyper)
    if model in ("fused", "compile"):
        cfg = replace(cfg, step=model)
    elif model:
        cfg = replace(cfg, model=f"{__name__}:make", width=RunConfig.width)
    out = record(cfg, tmp_path / "run.zarr")
    thetas, Fs, states = torch_loop(cfg, steps)
    ds = xr.open_zarr(out)
    np.testing.assert_allclose(ds.loss.values, Fs, rtol=1e-12, atol=1e-12)
    saved = ds.pstep.values
    np.testing.assert_allclose(ds.params.values, thetas[:, saved], rtol=1e-12, atol=1e-12)
    assert sorted(v for v in ds.data_vars if v.startswith("opt_")) == sorted(f"opt_{b}" for b in states)
    for b, arr in states.items():
        np.testing.assert_allclose(ds[f"opt_{b}"].values, arr[:, saved], rtol=1e-12, atol=1e-12)
    between = [saved[1] + 7, saved[1] + 41, steps - 1]
    replayed = Run.open(out).params_at(between)
    np.testing.assert_allclose(replayed, thetas[:, between], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("opt, step", [("momentum", "eager"), ("rmsprop", "eager"), ("adam", "eager"),
                                       ("nesterov", "fused"), ("adam", "fused"),
                                       pytest.param("adam", "compile", marks=pytest.mark.slow)])  # fmt: skip
def test_a_crash_and_resume_changes_nothing(tmp_path, opt, step):
    """Interrupted after its first flush and resumed, every array (the optimizer's state
    included) equals the uninterrupted run's, bit for bit."""
    cfg = replace(BASE, optimizer=opt, step=step)
    full = record(cfg, tmp_path / "full.zarr")
    cut = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        record(cfg, cut, progress=stop_after(100))
    resume(cut)
    x, y = xr.open_zarr(full), xr.open_zarr(cut)
    assert set(x.data_vars) == set(y.data_vars)
    for name in x.data_vars:
        np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=name)


def test_the_edge_coordinate_is_each_optimizers_threshold(tmp_path):
    """The stored threshold per replica, against the closed forms (docs/reference/optimizers.md)."""
    eta = np.array(BASE.etas)
    want = {
        "gd": 2 / eta,
        "momentum": (2 + 2 * BASE.betas[0]) / eta,
        "nesterov": (2 + 2 * BASE.betas[0]) / ((1 + 2 * BASE.betas[0]) * eta),
        "rmsprop": 2 / eta,
        "adam": (2 + 2 * BASE.beta1s[0]) / ((1 - BASE.beta1s[0]) * eta),
    }
    for opt, edge in want.items():
        out = record(replace(BASE, optimizer=opt, steps=80), tmp_path / f"{opt}.zarr")
        got = xr.open_zarr(out).edge.values.reshape(len(BASE.seeds), len(eta))
        np.testing.assert_allclose(got, np.broadcast_to(edge, got.shape), rtol=1e-15)


def test_replay_without_the_state_is_refused(tmp_path):
    """An engine asked to step on from a step whose optimizer state it does not hold refuses:
    θ alone would replay another trajectory."""
    cfg = replace(BASE, optimizer="momentum")
    eng = build.engine(cfg, build.dataset(cfg))
    theta = eng.init([r.seed for r in cfg.replicas()])
    eng.advance(theta, 0, 3)
    with pytest.raises(LandscapeError, match="momentum optimizer's state is needed at step 10"):
        eng.advance(theta, 10, 12)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(optimizer="momentum", betas=(0.5, 1.0)), r"beta must be in \[0, 1\), got 1.0"),
        (dict(optimizer="adam", beta2s=(-0.1,)), r"beta2 must be in \[0, 1\)"),
        (dict(optimizer="rmsprop", epsilons=(0.0,)), "eps must be > 0"),
        (dict(optimizer="adam", betas=(0.5, 0.9)), "several values of beta with --optimizer adam, which does not"),
        (dict(optimizer="momentum", betas=(0.5, 0.5)), "beta 0.5 given twice"),
        (dict(optimizer="adam", beta1s=()), "no value given for beta1"),
    ],
)
def test_bad_optimizer_settings_are_one_line(change, message):
    with pytest.raises(LandscapeError, match=message):
        replace(BASE, **change).validate()


def test_analyses_of_gradient_descent_alone_refuse_another_optimizer(tmp_path):
    """Fig. 1's summary (λ against 2/η) is gradient descent's: a momentum run is refused in
    one line, not analysed wrongly (the Lyapunov exponents take the optimizer's state along:
    tests/landscape/engines/test_tangent.py)."""
    from landscape.analysis import edge_of_stability

    out = record(replace(BASE, optimizer="momentum", steps=80), tmp_path / "hb.zarr")
    with pytest.raises(LandscapeError, match="Fig. 1 holds gradient descent against 2/η"):
        edge_of_stability.summarize([out])


def test_a_rewind_restarts_from_the_saved_state(tmp_path):
    """A damaged chunk after a saved step: `--rewind` records again from the last intact flush
    with saved parameters, taking the optimizer's state saved there; θ, the loss and the state
    then equal the uninterrupted run's bit for bit."""
    from click.testing import CliRunner

    from landscape.app.cli import main
    from landscape.store.integrity import check

    cfg = replace(BASE, optimizer="adam", etas=(0.002, 0.005))
    full = record(cfg, tmp_path / "full.zarr")
    cut = tmp_path / "cut.zarr"
    with pytest.raises(KeyboardInterrupt):
        record(cfg, cut, progress=stop_after(170))
    chunk = cut / "loss" / "c" / "0" / "1"  # steps 80 … 159
    b = bytearray(chunk.read_bytes())
    b[len(b) // 2] ^= 0xFF
    chunk.write_bytes(bytes(b))
    assert not check(cut).ok
    r = CliRunner().invoke(main, ["record", "--resume", str(cut), "--rewind", "-q"])
    assert r.exit_code == 0, r.output
    x, y = xr.open_zarr(full), xr.open_zarr(cut)
    for name in ("params", "loss", "opt_m", "opt_s", "train_acc"):
        np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=name)


def test_a_hyper_parameter_swept_in_one_batch_is_a_stored_coordinate(tmp_path):
    """β given as a list is a replica coordinate like η (the product seeds × η × … × β), stored
    per replica beside its threshold; the config round-trips; an edited β is caught on opening."""
    import json

    from landscape.runs.opened import Run

    cfg = replace(BASE, optimizer="momentum", betas=(0.5, 0.9), steps=80)
    out = record(cfg, tmp_path / "hb.zarr")
    ds = xr.open_zarr(out)
    reps = cfg.replicas()
    assert len(reps) == 2 * 2 * 2 and ds.beta.values.tolist() == [r.beta for r in reps]
    np.testing.assert_allclose(ds.edge.values, (2 + 2 * ds.beta.values) / ds.eta.values, rtol=1e-15)
    assert RunConfig.from_json(cfg.to_json()) == cfg
    meta = json.loads((out / "zarr.json").read_text())
    c = json.loads(meta["attributes"]["config"])
    c["betas"] = [0.5, 0.8]
    meta["attributes"]["config"] = json.dumps(c)
    (out / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(LandscapeError, match="'beta' coordinate disagree"):
        Run.open(out)
