"""landscape: record and analyse training under dynamical loss functions.

The entry points a Python user needs are loaded on first use, so `import landscape` stays
cheap (no torch until a name is used). Record a small run, open it, read the instabilities:

>>> import tempfile, landscape
>>> cfg = landscape.RunConfig(loss="dmse1", etas=(0.3,), width=8, steps=200, n_per_class=20,
...                           hessian_every=50, save_params_every=100, chunk_steps=100)
>>> path = landscape.record(cfg, tempfile.mkdtemp() + "/run.zarr")
>>> run = landscape.open_run(path)          # store, config and the recorded xarray Dataset
>>> run.ds.loss.dims, run.ds.sizes["step"]
(('replica', 'step'), 200)
>>> landscape.params_at(run, [150], [0]).shape   # θ at any step, by exact replay
(1, 1, 51)
>>> sorted(landscape.detect(run).data_vars)[:3]
['chaos_exponent', 'diverged_at', 'first_instability']
"""

from importlib import import_module

__version__ = "0.3.0"


class LandscapeError(Exception):
    """A problem with the user's input: reported as one line, never a traceback."""


# name -> module holding it: the public face, imported lazily
_PUBLIC = {
    "RunConfig": "landscape.config.run",
    "SweepSpec": "landscape.config.sweep",
    "record": "landscape.recorders.record",
    "resume": "landscape.recorders.record",
    "sweep": "landscape.recorders.sweep",
    "Run": "landscape.runs.opened",
    "open_run": "landscape.runs.opened",
    "params_at": "landscape.runs.opened",
    "open_sweep": "landscape.store.sweep",
    "detect": "landscape.analysis.bifurcations",
    "first_instabilities": "landscape.analysis.first_instability",
    "loss_slices": "landscape.analysis.slices",
    "final_accuracies": "landscape.analysis.generalization",
}

__all__ = ["LandscapeError", "__version__", *_PUBLIC]


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value  # once
        return value
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
