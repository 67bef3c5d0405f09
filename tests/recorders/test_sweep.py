"""Sweeps: packing, the grid view, local processes and a real Dask cluster, kill and resume."""

import json
from dataclasses import replace

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from landscape.analysis.bifurcations import detect
from landscape.app.cli import main
from landscape.config.run import RunConfig
from landscape.config.sweep import SweepSpec
from landscape.recorders.sweep import plan, sweep
from landscape.runs import build
from landscape.runs.opened import params_at
from landscape.store.sweep import open_sweep

TINY = dict(
    losses=("dce", "dmse2"),
    etas=(0.5, 1.0),
    amplitudes=(5.0,),
    periods=(40,),
    widths=(8,),
    seeds=(0, 1),
    steps=120,
    hessian_every=10,
    save_params_every=40,
    chunk_steps=40,
    n_per_class=8,
    batch_size=3,
)
VARS = ("loss", "loss_static", "train_acc", "val_acc", "gamma", "params")


def same(a: xr.Dataset, b: xr.Dataset):
    """Trajectories bit for bit; spectra to 1e-9 (a worker's thread count changes the order of
    the eigensolver's reductions)."""
    for v in VARS:
        np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=v)
    np.testing.assert_allclose(a.eigval.values, b.eigval.values, rtol=1e-9, atol=0)


def test_packing_groups_by_loss_width_and_steps():
    spec = SweepSpec().replace(
        losses=("dce", "dmse1"),
        etas=(0.5, 1.0, 2.0),
        widths=(10, 20),
        seeds=tuple(range(5)),
        steps_per_eta=1000,
        batch_size=4,
    )
    batches = plan(spec)
    assert sum(len(b.replicas()) for b in batches) == spec.num_runs() == 60
    for b in batches:
        assert len(b.replicas()) <= 4
        assert {r.eta for r in b.replicas()} == {1000 / b.steps} or len({r.eta for r in b.replicas()}) == 1
    assert {b.steps for b in batches} == {500, 1000, 2000}
    assert len({(b.loss, b.width, b.steps) for b in batches}) == 12
    auto = SweepSpec().replace(seeds=tuple(range(100))).batches()
    assert [len(b.replicas()) for b in auto] == [64, 36]  # the CPU default


def test_largest_batches_run_first(tmp_path, monkeypatch):
    """A pool that ends on one long batch alone leaves its other workers idle: batches go
    largest first (run-steps × width), ties in the grid's order, and a resume keeps that."""
    from landscape.recorders import sweep as sweep_mod

    spec = SweepSpec().replace(**{**TINY, "losses": ("dce",), "widths": (4, 16, 8), "etas": (0.5,)})
    spec = spec.replace(steps_per_eta=60, etas=(0.5, 1.0))  # 120 and 60 steps: the work differs in both
    batches = plan(spec)
    names = [f"b{i:03d}" for i in range(len(batches))]
    expected = sorted(names, key=lambda n: (-sweep_mod.work(batches[names.index(n)]), names.index(n)))
    ran = []
    monkeypatch.setattr(sweep_mod, "run_batch", lambda path, name, cfg: ran.append(name))
    sweep(spec, tmp_path / "s.zarr")
    assert ran == expected and ran != names
    assert [batches[names.index(n)].width for n in ran][:2] == [16, 16]
    work = [sweep_mod.work(batches[names.index(n)]) for n in ran]
    assert work == sorted(work, reverse=True)


@pytest.mark.slow
def test_grid_view_selects_by_value(tmp_path):
    out = sweep(SweepSpec().replace(**TINY), tmp_path / "s.zarr")
    r = CliRunner().invoke(main, ["info", str(out)])
    assert r.exit_code == 0 and "8 runs in 4 batches" in r.output and r.output.count("complete") == 4
    ds = open_sweep(out)
    assert ds.sizes["loss_name"] == 2 and ds.sizes["eta"] == 2 and ds.sizes["seed"] == 2
    one = ds.sel(loss_name="dce", eta=0.5, seed=1).squeeze()
    assert one.loss.dims == ("step",) and np.isfinite(one.loss.values).all()
    # the same run recorded alone gives the same numbers
    from landscape.config.run import RunConfig
    from landscape.recorders import record

    alone = record(
        RunConfig(
            loss="dce",
            etas=(0.5,),
            amplitudes=(5.0,),
            periods=(40,),
            seeds=(1,),
            width=8,
            steps=120,
            hessian_every=10,
            save_params_every=40,
            chunk_steps=40,
            n_per_class=8,
        ),
        tmp_path / "a.zarr",
    )
    np.testing.assert_allclose(one.loss.values, xr.open_zarr(alone).loss.values[0], rtol=1e-10)


@pytest.mark.dask
@pytest.mark.slow
def test_local_processes_and_dask_cluster_equal_in_process(tmp_path):
    from distributed import LocalCluster

    spec = SweepSpec().replace(**TINY)
    ref = open_sweep(sweep(spec, tmp_path / "ref.zarr"))
    same(ref, open_sweep(sweep(spec, tmp_path / "procs.zarr", workers=2)))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        same(ref, open_sweep(sweep(spec, tmp_path / "dask.zarr", scheduler=cluster.scheduler_address)))


@pytest.mark.slow
def test_until_first_instability_stops_early_and_agrees_with_the_analysis(tmp_path):
    spec = SweepSpec().replace(
        losses=("dce",),
        etas=(1.0,),
        amplitudes=(50.0,),
        periods=(5000,),
        widths=(100,),
        seeds=(0, 1),
        steps=20000,
        until="first-instability",
        chunk_steps=500,
    )
    out = sweep(spec, tmp_path / "early.zarr")
    b = out / "b000"
    attrs = json.loads((b / "zarr.json").read_text())["attributes"]
    done, fi = attrs["steps_done"], attrs["first_instability"]
    assert attrs["status"] == "complete" and done < 20000
    # it stopped at the first flush after the last first instability + the margin
    assert max(fi) + 200 <= done < max(fi) + 200 + 500
    # each onset is where the iterates start to bounce, checked on replayed θ (not the recorded
    # signals): from t on p_t = θ_{t+1} − 2θ_t + θ_{t−1} alternates in direction and grows
    for r, t in enumerate(fi):
        th = params_at(b, list(range(t - 1, t + 302)), [r])[0]
        p = th[2:] - 2 * th[1:-1] + th[:-2]  # p at steps t … t + 300
        n = np.linalg.norm(p, axis=1)
        cos = (p[1:] * p[:-1]).sum(1) / (n[1:] * n[:-1])
        assert (cos[:100] < -0.9).mean() >= 0.9 and n.max() >= 2 * n[0], (r, t)
    # the offline analysis of the stopped store agrees with the online stop
    np.testing.assert_array_equal(detect(b).first_instability.values, fi)
    # each replica stopped at the first flush a margin after its own first instability, the
    # batch with the last of them; stopping early changed nothing that was recorded before each
    # stop (a run of exactly `done` steps is the same there), and after it a replica is NaN
    stop = attrs["stopped_at"]
    for r, t in enumerate(fi):
        assert t + 200 <= stop[r] < t + 200 + 500 and stop[r] % 500 == 0, (r, t, stop)
    assert max(stop) == done and min(stop) < done  # one replica stopped before the other
    from landscape.config.run import RunConfig
    from landscape.recorders import record

    full_cfg = RunConfig.from_json(attrs["config"])
    full = record(
        replace(full_cfg, until="end", steps=done, chunk_steps=500, save_params_every=500), tmp_path / "plain.zarr"
    )
    x, y = xr.open_zarr(full), xr.open_zarr(b)
    for v in ("loss", "train_acc", "iter_p", "iter_proj"):
        for r in range(2):
            np.testing.assert_array_equal(x[v].values[r, : stop[r]], y[v].values[r, : stop[r]], err_msg=v)
            after = stop[r] + (v == "iter_proj")  # the projection at the stop is θ_stop's, still known
            assert np.isnan(y[v].values[r, after:done]).all(), v
    np.testing.assert_array_equal(x.gamma.values, y.gamma.values[:, :done])


def test_dry_run_writes_nothing(tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "sweep",
            "--loss",
            "dce,dmse1",
            "--eta",
            "0.5,1",
            "--seeds",
            "3",
            "--steps",
            "100",
            "--out",
            str(tmp_path / "s.zarr"),
            "--dry-run",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "12 runs in 2 batches" in r.output and "Fig. 4" in r.output and "run-steps/s" in r.output
    assert not (tmp_path / "s.zarr").exists()


def test_cost_counts_every_batch_and_calibrates_each_kind_once(monkeypatch):
    """Run-steps and store bytes against an independent count; one calibration per (loss, width,
    batch size), none when the rates are passed in; nothing to record costs nothing."""
    from landscape.recorders import sweep as sweeps
    from landscape.store.run import nbytes

    base = RunConfig(steps=40, width=6, n_per_class=5, hessian_every=20, top_k=2, etas=(0.5, 1.0), seeds=(0, 1, 2))
    spec = SweepSpec(base=base, losses=("dce", "dmse1"), batch_size=4)
    batches = sweeps.plan(spec)
    data = build.dataset(batches[0])
    calls = []
    real = sweeps.measure_rate
    monkeypatch.setattr(sweeps, "measure_rate", lambda cfg, r: calls.append((cfg.loss, cfg.width, r)) or real(cfg, r))
    rates: dict = {}
    c = sweeps.cost(batches, rates)
    assert c.run_steps == sum(b.steps * len(b.replicas()) for b in batches) == 2 * 2 * 3 * 40
    assert c.store_bytes == sum(nbytes(b, data.num_classes, build.num_params(b, data)) for b in batches)
    kinds = {(b.loss, b.width, len(b.replicas())) for b in batches}
    assert sorted(calls) == sorted(kinds) and set(c.rates) == kinds and c.seconds > 0
    again = sweeps.cost(batches, rates)
    assert len(calls) == len(kinds) and again == c  # the shared rates: no second calibration
    assert sweeps.cost([]) == sweeps.Cost(0.0, 0, 0)


def test_the_calibration_times_the_recorders_own_segments(monkeypatch):
    """The forecast's rate comes from what the recorder runs: `engine.steps` over segments of
    `eval_every` steps with the iterate signals tracked (not single steps validated at each)."""
    from landscape.recorders import sweep as sweeps

    seen = []
    real = build.engine

    def spying(cfg, data):
        eng = real(cfg, data)
        steps = eng.steps

        def spy(theta, t, G, evaluate=True, track=None):
            seen.append((t, G.shape[0], evaluate, track is not None))
            return steps(theta, t, G, evaluate, track)

        eng.steps = spy
        return eng

    monkeypatch.setattr(build, "engine", spying)
    cfg = RunConfig(width=6, n_per_class=5, eval_every=10, hessian_every=40, top_k=2, step="eager")
    assert sweeps.measure_rate(cfg, 3, steps=50) > 0
    timed = seen[1:]  # after the warm-up
    assert [(t, n) for t, n, _, _ in timed] == [(3 + 10 * i, 10) for i in range(5)]
    assert all(ev and tracked for _, _, ev, tracked in timed)


@pytest.mark.parametrize(
    "args, msg",
    [
        (["--eta", ","], "no value for etas"),
        (["--eta", "-1"], "eta must be > 0"),
        (["--width", "0"], "width must be >= 1"),
        (["--loss", "hinge"], "'hinge' is none of"),
        pytest.param(["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler", marks=pytest.mark.dask),
    ],
)
@pytest.mark.slow
def test_bad_sweep_input(tmp_path, args, msg):
    r = CliRunner().invoke(main, ["sweep", "--steps", "50", "--out", str(tmp_path / "s.zarr")] + args)
    assert r.exit_code == 2 and msg in r.output and r.output.count("\n") == 1, r.output
    assert not (tmp_path / "s.zarr").exists()


def test_toml(tmp_path):
    good = tmp_path / "g.toml"
    good.write_text(
        'loss = ["dce", "dmse2"]\neta = [0.5]\nseeds = 2\nsteps = 40\nwidth = 6\nchunk_steps = 20\n'
        "save_params_every = 20\nhessian_every = 10\nn_per_class = 8\n"
    )
    r = CliRunner().invoke(
        main, ["sweep", "--config", str(good), "--eta", "0.25", "--out", str(tmp_path / "s.zarr"), "-q"]
    )
    assert r.exit_code == 0, r.output
    ds = open_sweep(tmp_path / "s.zarr")
    assert list(ds.eta.values) == [0.25] and ds.sizes["loss_name"] == 2 and ds.sizes["seed"] == 2
    bad = tmp_path / "b.toml"
    bad.write_text('loss = ["dce"]\nlearning_rate = 0.1\n')
    r = CliRunner().invoke(main, ["sweep", "--config", str(bad), "--out", str(tmp_path / "t.zarr")])
    assert r.exit_code == 2 and "unknown key(s) learning_rate" in r.output and r.output.count("\n") == 1
    assert not (tmp_path / "t.zarr").exists()


@pytest.mark.slow
def test_each_replica_stops_on_its_own_and_a_resume_changes_nothing(tmp_path):
    """--until first-instability on the fused step: a replica stopped a margin after its own
    first instability is NaN from its stop on and costs the others nothing (the one still
    running equals, bit for bit, the same replica recorded alone); a recording interrupted after
    the first stop and resumed equals the uninterrupted one."""
    from landscape.config.run import RunConfig
    from landscape.recorders import record, resume

    cfg = RunConfig(
        loss="dce", etas=(1.0,), amplitudes=(50.0,), periods=(5000,), width=100, seeds=(0, 1), steps=20000,
        until="first-instability", chunk_steps=500, step="fused", eval_every=25,
    )  # fmt: skip
    ref = record(cfg, tmp_path / "ref.zarr")
    attrs = json.loads((ref / "zarr.json").read_text())["attributes"]
    stop, done = attrs["stopped_at"], attrs["steps_done"]
    first = int(np.argmin(stop))
    assert stop[first] < done == max(stop), stop
    x = xr.open_zarr(ref)
    assert np.isnan(x.loss.values[first, stop[first] : done]).all()
    assert np.isnan(x.train_acc.values[first, stop[first] : done]).all()
    info = CliRunner().invoke(main, ["info", str(ref)])
    assert info.exit_code == 0 and "2 of 2 stopped a margin after their first instability" in info.output, info.output
    np.testing.assert_array_equal(detect(ref).steps_run.values, stop)  # how long each ran, for the summaries
    late = 1 - first
    alone = record(replace(cfg, seeds=(cfg.seeds[late],), until="end", steps=done), tmp_path / "alone.zarr")
    y = xr.open_zarr(alone)
    for v in ("loss", "train_acc", "val_acc", "iter_p", "iter_q", "iter_cos", "iter_proj"):
        n = done - (v == "val_acc")  # a run's last step is always validated
        np.testing.assert_array_equal(x[v].values[late, :n], y[v].values[0, :n], err_msg=v)
    np.testing.assert_array_equal(x.params.values[late, : y.sizes["pstep"]], y.params.values[0])
    calls = []

    def boom(n):
        calls.append(n)
        if sum(calls) >= stop[first] + 700:  # after the first stop, before the end
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError):
        record(cfg, tmp_path / "crash.zarr", progress=boom)
    resume(tmp_path / "crash.zarr")
    z = xr.open_zarr(tmp_path / "crash.zarr")
    assert json.loads((tmp_path / "crash.zarr" / "zarr.json").read_text())["attributes"]["stopped_at"] == stop
    for v in ("loss", "train_acc", "val_acc", "iter_p", "iter_proj", "eigval", "params"):
        np.testing.assert_array_equal(x[v].values, z[v].values, err_msg=v)
