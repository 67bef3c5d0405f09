"""`landscape reproduce figN`: run the sweeps a figure of the paper needs, summarise them, and
write the figure and a Markdown report that puts each claim of the paper beside the measured
number. The figures themselves (sweeps by size, summary, report) are the registry in
`landscape.app.paper`; this module drives any of them the same way.

It drives both the recorders and the analysis (they still meet only through the stores it
writes), which is why it lives in the application room.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from landscape import LandscapeError
from landscape.store import sweep as sweep_store

from .paper import SIZES, figure
from .paper.common import check_size

if TYPE_CHECKING:
    from landscape.config.sweep import SweepSpec
    from landscape.recorders.sweep import Cost

__all__ = ["SIZES", "estimate", "on_device", "run", "specs", "summary_names"]


def specs(fig: str, size: str):
    """The sweeps a figure needs at a size, by name."""
    check_size(size)
    return figure(fig).specs(size)


def summary_names(fig: str, wanted, out=None) -> list[str]:
    """The summary stores a figure's report is drawn from."""
    return figure(fig).summary_names(wanted, out)


def on_device(spec: SweepSpec, device: str | None) -> SweepSpec:
    """A figure's sweep on `device` (None: where the figure says, the CPU). The fused step is the
    CPU's; elsewhere the engine steps eagerly, the path checked against the CPU on a GPU
    (bench/gpu_check.sh), so `--device cuda` runs the same grid."""
    if not device:
        return spec
    if spec.base.step == "fused" and device.split(":")[0] != "cpu":
        return spec.replace(device=device, step="eager")
    return spec.replace(device=device)


def estimate(fig: str, size: str, device: str | None = None, out_dir=None) -> Cost:
    """What `landscape reproduce fig size` still has to record, from the engine's rate measured on
    this device (a short calibration, nothing written). With `out_dir`, a resumed run counts only
    what is left: batches already complete there, and parts whose summary is there without their
    store (finished elsewhere), cost nothing. Early-stopping sweeps (`--until first-instability`)
    are counted at full length: an upper bound."""
    from landscape.recorders.sweep import Cost, cost, plan

    total = Cost(0.0, 0, 0)
    rates: dict[tuple, float] = {}  # shared by the parts: one calibration per kind
    for name, spec in figure(fig).specs(size).items():
        batches = plan(on_device(spec, device))
        done = _complete(Path(out_dir), name, len(batches)) if out_dir is not None else set()
        total += cost([b for i, b in enumerate(batches) if i not in done], rates)
    return total


def _finished_elsewhere(out_dir: Path, name: str) -> bool:
    """A part whose summary is in `out_dir` without its store: finished on another machine (the
    committed summary copied here), kept as it is and not recorded again."""
    return (out_dir / f"{name}_summary.zarr").exists() and not (out_dir / f"{name}.zarr").exists()


def _complete(out_dir: Path, name: str, n: int) -> set[int]:
    """Indices of a sweep's batches that a resumed run will not record again."""
    path = out_dir / f"{name}.zarr"
    if _finished_elsewhere(out_dir, name):
        return set(range(n))
    if not path.exists():
        return set()
    if not sweep_store.is_sweep(path):
        return set()  # the sweep refuses it with its own message
    return {i for i in range(n) if sweep_store.batch_status(path, sweep_store.batch_name(i)) == "complete"}


def check_out_dir(out_dir) -> Path:
    """--dir is a folder of reproduce's own: never a recording or a sweep store, into which the
    sweeps, summaries and figures would otherwise be written."""
    out_dir = Path(out_dir)
    if (out_dir / "zarr.json").is_file():
        raise LandscapeError(
            f"--dir {out_dir} is a Zarr store (a recording or a sweep); reproduce writes a folder of sweeps, "
            "summaries, figure and report: choose a folder of its own"
        )
    if out_dir.exists() and not out_dir.is_dir():
        raise LandscapeError(f"--dir {out_dir} exists and is not a directory")
    return out_dir


def run(
    fig: str,
    size: str,
    out_dir,
    *,
    device: str | None = None,
    workers: int = 1,
    scheduler: str | None = None,
    progress=None,
    redraw: bool = False,
) -> Path:
    """Record (or finish) the sweeps, summarise them, and write figure and report.md from the
    summaries. A sweep whose summary is in `out_dir` without its store is a part finished
    elsewhere (copied from docs/results/paper/ to finish a figure on a new machine): not recorded
    again. With `redraw`, only the last step: the summaries already in `out_dir` (the
    committed ones under docs/results/paper/) give figure and report without training."""
    from landscape.recorders.sweep import sweep

    module = figure(fig)
    wanted = specs(fig, size)  # an unknown figure or size fails here, before anything is written
    out_dir = check_out_dir(out_dir)
    if redraw:
        missing = [str(out_dir / n) for n in module.summary_names(wanted, out_dir) if not (out_dir / n).exists()]
        if missing:
            raise LandscapeError(f"--redraw needs the summaries of a finished run; missing {', '.join(missing)}")
    else:
        if out_dir.exists() and not out_dir.is_dir():
            raise LandscapeError(f"--dir {out_dir} exists and is not a directory")
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LandscapeError(f"cannot create --dir {out_dir}: {exc.strerror or exc}") from None
        stores = {}
        for name, spec in wanted.items():
            spec = on_device(spec, device)
            path = out_dir / f"{name}.zarr"
            if _finished_elsewhere(out_dir, name):
                continue
            sweep(spec, path, workers=workers, scheduler=scheduler, resume_existing=path.exists(), progress=progress)
            stores[name] = [str(path / n) for n in sweep_store.index(path)[1]]
            # each sweep summarised as soon as it is done: a part to commit while the next one runs
            if not _newer(out_dir / f"{name}_summary.zarr", path):
                module.summarize({name: stores[name]}, out_dir)
    report = module.report(out_dir, wanted)
    flag = "" if size == "full" else f" --{size}"
    cmd = f"landscape reproduce {fig}{flag} --dir {out_dir}"
    text = f"# {fig.upper()} reproduced ({size})\n\nRebuild: `{cmd}`"
    text += " (add `--redraw` to draw figure and report again from the summaries, without training)"
    text += "\n\n" + report
    (out_dir / "report.md").write_text(text)
    return out_dir / "report.md"


def _newer(summary: Path, sweep_path: Path) -> bool:
    """Whether `summary` was written after the sweep's last change (its index and batches)."""
    if not summary.exists():
        return False
    changed = max(p.stat().st_mtime for p in sweep_path.rglob("zarr.json"))
    return summary.stat().st_mtime > changed
