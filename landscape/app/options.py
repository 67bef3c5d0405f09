"""Command-line options derived from the config dataclasses, and one-line user errors.

Each knob of `RunConfig` / `SweepSpec` (`landscape.config.knobs`) becomes one click option with
default None, so a command knows which options were given; the defaults and help text
are the dataclass's.
"""

from __future__ import annotations

import dataclasses
import functools
import signal
import sys
import threading

import click

from landscape import LandscapeError
from landscape.config.knobs import Knob, parse, resolve_aliases


def knob_options(knob_list: list[Knob]):
    """A decorator adding one option per knob (list knobs repeat or take 'a,b,c')."""

    def deco(fn):
        for k in reversed(knob_list):
            names = [f"--{k.flag}"] + ([f"-{k.short}"] if k.short else [])
            default = k.default if not isinstance(k.default, tuple) or k.default else None
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            if k.parse == "seeds":
                shown = f"{shown} (one seed)"
            metavar = {int: "INT", float: "NUMBER", tuple: "LIST"}.get(k.kind, "TEXT")
            help_ = k.help + ("" if default is None or "[default" in k.help else f" [default: {shown}]")
            if k.kind is bool:
                fn = click.option(f"--{k.flag}/--no-{k.flag}", k.name, default=None, help=help_)(fn)
            elif k.kind is tuple and k.parse is None:
                fn = click.option(
                    *names, k.name, multiple=True, default=None, metavar="LIST", help=help_ + "; several: a,b or repeat"
                )(fn)
            elif k.choices and k.kind is str:
                choice = click.Choice(k.choices)
                fn = click.option(*names, k.name, default=None, type=choice, help=help_)(fn)
            else:
                fn = click.option(*names, k.name, default=None, metavar=metavar, help=help_)(fn)
            for flag, value in reversed(k.aliases):
                fn = click.option(
                    f"--{flag}", f"{k.name}__{flag}", is_flag=True, default=None, help=f"--{k.flag} {value}"
                )(fn)
        return fn

    return deco


def detector_options(fn):
    """One option per field of `Detector`, with the default and help declared there."""
    from landscape.dynamics.detector import Detector

    for f in reversed(dataclasses.fields(Detector)):
        fn = click.option(
            f"--{f.name.replace('_', '-')}", f.name, type=type(f.default), default=f.default, show_default=True,
            help=f.metadata["help"],
        )(fn)  # fmt: skip
    return fn


def given(knob_list: list[Knob], params: dict) -> dict:
    """{field: parsed value} of the knobs given on the command line."""
    out = {}
    for k in knob_list:
        v = params.get(k.name)
        if v is None or v == ():
            continue
        out[k.name] = parse(k, list(v) if isinstance(v, tuple) else v)
    flags = {flag: True for k in knob_list for flag, _ in k.aliases if params.get(f"{k.name}__{flag}")}
    return resolve_aliases(knob_list, {**out, **flags})


class Interrupted(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that both stop a command the same way."""


def _on_sigterm(signum, frame):
    raise Interrupted()


def exit_status(exc: KeyboardInterrupt) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal, as shells report them)."""
    return 143 if isinstance(exc, Interrupted) else 130


def user_errors(hint: str | None = None):
    """Turn LandscapeError into `error: …` and exit 2; Ctrl-C and SIGTERM into one line (with
    how to continue, where the command can) and exit 130 / 143."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*a, **kw):
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, _on_sigterm)
            try:
                return fn(*a, **kw)
            except LandscapeError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(2)
            except KeyboardInterrupt as exc:
                click.echo("interrupted" + (f"; {hint}" if hint else ""), err=True)
                sys.exit(exit_status(exc))

        return wrapper

    return deco
