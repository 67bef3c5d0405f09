"""Loading a user's model factory: `PKG.MODULE:FACTORY` (importable, the current directory
included) or `FILE.py:FACTORY`, called as `FACTORY(seed, **model_args)` and returning a fresh
`torch.nn.Module`; every failure is one line naming the spec."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

from landscape import LandscapeError


def parse_args(items) -> dict:
    """('channels=4', 'act=relu') → {'channels': 4, 'act': 'relu'} (Python literals, else text)."""
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip().isidentifier():
            raise LandscapeError(f"--model-arg '{item}': expected key=value")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def _module(where: str):
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise LandscapeError(f"--model: file {where} does not exist")
        spec = importlib.util.spec_from_file_location(f"landscape_user_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise LandscapeError(f"--model: cannot load {where}")
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
        except Exception as exc:
            raise LandscapeError(f"--model: importing {where} raised {type(exc).__name__}: {exc}") from None
        return mod
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # `examples.cnn` from the directory one works in
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        raise LandscapeError(f"--model: cannot import module '{where}' ({exc})") from None
    except Exception as exc:
        raise LandscapeError(f"--model: importing '{where}' raised {type(exc).__name__}: {exc}") from None


def load_factory(spec: str | None, args=()):
    """`seed -> nn.Module` for the spec."""
    if not spec or ":" not in spec:
        raise LandscapeError(f"--model '{spec}': expected PKG.MODULE:FACTORY or FILE.py:FACTORY")
    where, name = spec.rsplit(":", 1)
    fn = getattr(_module(where), name, None)
    if not callable(fn):
        raise LandscapeError(f"--model: '{where}' has no callable '{name}'")
    kwargs = parse_args(args)

    def make(seed: int):
        try:
            return fn(seed, **kwargs)
        except Exception as exc:
            raise LandscapeError(f"--model: {name}(seed={seed}, {kwargs}) raised {type(exc).__name__}: {exc}") from None

    return make


def check_model(make, X, num_classes: int, seeds=(0,)) -> int:
    """Build the modules of `seeds` and run the first on every training input: a factory that
    returns no module, an architecture that changes with the seed, a forward that fails on the
    data or returns anything but floating-point (inputs, classes) logits is one line, naming
    the model and what the engine needs, before anything is recorded. Returns its parameter
    count. (What only the batched engine shows, vmap and the gradient, is checked by
    `landscape.engines.module.ModuleEngine.probe`.)"""
    import torch

    seeds = list(dict.fromkeys(int(s) for s in seeds)) or [0]
    m = make(seeds[0])
    if not isinstance(m, torch.nn.Module):
        raise LandscapeError(f"--model: the factory returned {type(m).__name__}, not a torch.nn.Module")
    shapes = [(n, tuple(p.shape)) for n, p in m.named_parameters()]
    if not shapes:
        raise LandscapeError("--model: the model has no parameters to train")
    for s in seeds[1:]:
        other = make(s)
        got = [(n, tuple(p.shape)) for n, p in other.named_parameters()] if isinstance(other, torch.nn.Module) else []
        if got != shapes:
            raise LandscapeError(
                f"--model: the architecture changes with the seed (seed {s} has {_difference(shapes, got, seeds[0])}); "
                "the replicas train in lockstep and need one architecture, the seed may change only the initial values"
            )
    m = m.double()
    x = torch.as_tensor(X, dtype=torch.float64)
    try:
        with torch.no_grad():
            f = m(x)
    except Exception as exc:
        raise LandscapeError(
            f"--model: the model failed on the {x.shape[0]} training inputs of shape {tuple(x.shape)}: "
            f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        ) from None
    if not isinstance(f, torch.Tensor):
        raise LandscapeError(
            f"--model: forward returned a {type(f).__name__}, not a tensor; it must return the logits alone, "
            f"a tensor of shape (inputs, {num_classes})"
        )
    if not f.is_floating_point():
        raise LandscapeError(
            f"--model: forward returned {str(f.dtype).replace('torch.', '')} values; the losses need "
            "floating-point logits (no rounding, argmax or integer casts in forward)"
        )
    if tuple(f.shape) != (x.shape[0], num_classes):
        raise LandscapeError(
            f"--model: the model returns shape {tuple(f.shape)} for inputs of shape "
            f"{tuple(x.shape)}; it must return (inputs, {num_classes}) logits (the data's classes)"
        )
    return sum(p.numel() for p in m.parameters())


def _difference(first, other, seed0) -> str:
    """Where two parameter lists [(name, shape)] first differ, in words."""
    for (na, sa), (nb, sb) in zip(first, other):
        if (na, sa) != (nb, sb):
            return f"{nb} of shape {sb} where seed {seed0} has {na} of shape {sa}"
    return f"{len(other)} parameter tensors where seed {seed0} has {len(first)}"
