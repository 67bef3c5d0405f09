"""Settings declared once: a dataclass field carries its default, help text and option name.

`RunConfig` and `SweepSpec` declare their fields with `knob`; the command line
(`landscape.app.options`) and TOML files (`sweep_spec.load_toml`) are derived from
them and convert values with `parse`, so a knob cannot be reachable from one and not
from the other, and a default is written once.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from landscape import LandscapeError


def knob(
    default,
    help: str,
    *,
    flag: str | None = None,
    short: str | None = None,
    item=None,
    parse=None,
    replaces: str | None = None,
    aliases: dict | None = None,
    choices: tuple | None = None,
):
    """A field that is a user setting.

    flag: the option name when it differs from the field's (`eta` for `etas`); short: a
    one-letter alias; item: element type of a list knob; parse: a named text parser
    (`seeds`: a count, a list or a range); replaces: in a sweep, the run knob this grid
    axis stands for (`losses` for `loss`); aliases: {flag: value} of on/off flags that set this
    knob (`--fused` for `--step fused`), also as TOML keys with `true`; choices: the values a
    text knob takes (a `click.Choice` on the command line, checked in TOML files too)."""
    return field(
        default=default,
        metadata={
            "help": help,
            "flag": flag,
            "short": short,
            "item": item,
            "parse": parse,
            "replaces": replaces,
            "aliases": tuple((aliases or {}).items()),
            "choices": tuple(choices) if choices else None,
        },
    )


@dataclass(frozen=True)
class Knob:
    """What the command line and TOML need to know about one setting."""

    name: str  # the dataclass field
    flag: str  # option name without dashes, with '-' (`hessian-every`)
    short: str | None
    help: str
    default: Any
    kind: type  # bool, int, float, str or tuple
    item: type | None  # element type of a tuple knob
    parse: str | None
    replaces: str | None
    aliases: tuple  # ((flag, value), …)
    choices: tuple | None = None  # the values of a text knob

    @property
    def key(self) -> str:
        """TOML key (the flag with underscores)."""
        return self.flag.replace("-", "_")


def knobs(cls) -> list[Knob]:
    """The knobs of a dataclass, in field order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        kind = _base_type(hints[f.name])
        m = f.metadata
        out.append(
            Knob(
                f.name,
                (m["flag"] or f.name).replace("_", "-"),
                m["short"],
                m["help"],
                f.default,
                kind,
                m["item"],
                m["parse"],
                m["replaces"],
                m.get("aliases", ()),
                m.get("choices"),
            )
        )
    return out


def _base_type(t) -> type:
    if isinstance(t, types.UnionType) or typing.get_origin(t) is typing.Union:
        t = next(a for a in typing.get_args(t) if a is not type(None))
    return typing.get_origin(t) or t


def parse(k: Knob, value):
    """A knob's value from command-line text or a TOML value (one-line errors)."""
    if value is None:
        return None
    if k.kind is tuple:
        if k.parse == "seeds" and not isinstance(value, list | tuple):
            return parse_seeds(str(value), k.flag)
        values = value if isinstance(value, list | tuple) else [value]
        out = split_values(values, k.item, k.flag)
        bad = [v for v in out if v not in (k.choices or out)]
        if bad and k.choices:
            raise LandscapeError(f"{k.flag}: '{bad[0]}' is none of {', '.join(k.choices)}")
        return out
    if k.kind is bool:
        if isinstance(value, bool):
            return value
        raise LandscapeError(f"{k.flag}: expected true or false, got {value!r}")
    if k.kind is str and not isinstance(value, str):
        raise LandscapeError(f"{k.flag}: expected text, got {value!r}")
    if k.choices and value not in k.choices:
        raise LandscapeError(f"{k.flag}: '{value}' is none of {', '.join(k.choices)}")
    try:
        if k.kind is int:
            return _int(value)
        if k.kind is float:
            return float(value)
    except (TypeError, ValueError):
        raise LandscapeError(f"{k.flag}: '{value}' is not a valid {_NAMES[k.kind]}") from None
    return str(value)


def _int(v) -> int:
    """An integer, also from text or a float that is one ('1e3', 5000.0)."""
    f = float(v)
    if f != int(f):
        raise ValueError(v)
    return int(f)


_NAMES = {int: "integer", _int: "integer", float: "number", str: "text"}


def split_values(values, conv, name: str) -> tuple:
    """Values given as several items and/or comma-separated text: ('0.1,0.2', 0.3) → (0.1, 0.2, 0.3)."""
    conv = _int if conv is int else conv
    out = []
    for v in values:
        for part in str(v).split(",") if isinstance(v, str) else [v]:
            if isinstance(part, str):
                part = part.strip()
                if not part:
                    continue
            try:
                out.append(conv(part))
            except (TypeError, ValueError):
                raise LandscapeError(f"{name}: '{part}' is not a valid {_NAMES.get(conv, 'value')}") from None
    return tuple(out)


MAX_SEEDS = 1_000_000  # replicas of one command: far beyond what a machine records


def parse_seeds(text: str, name: str = "seeds") -> tuple:
    """'5' → seeds 0..4; '3,7,9' → those; '10-19' → that range (inclusive)."""
    text = text.strip()
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        if "-" in text[1:]:
            a, b = (int(v) for v in text.split("-", 1))
            if not 0 < b - a + 1 <= MAX_SEEDS:
                raise LandscapeError(f"{name}: the range '{text}' must hold from 1 to {MAX_SEEDS:,} seeds")
            return tuple(range(a, b + 1))
        n = int(text)
    except ValueError:
        raise LandscapeError(f"{name}: '{text}' is not a count, a list '1,2,3' or a range '0-9'") from None
    if not 1 <= n <= MAX_SEEDS:
        raise LandscapeError(f"{name}: need from 1 to {MAX_SEEDS:,} seeds, got {n}")
    return tuple(range(n))


def resolve_aliases(knob_list: list[Knob], values: dict) -> dict:
    """`values` with alias flags ({'fused': True}) turned into their knob's value ({'step':
    'fused'}); an alias and its knob, or two aliases, set to different values are an error."""
    out = dict(values)
    for k in knob_list:
        if not k.aliases:
            continue
        chosen = {f"--{k.flag} {out[k.name]}": out[k.name]} if out.get(k.name) is not None else {}
        if out.get(k.key) is not None and k.key != k.name:
            chosen = {f"--{k.flag} {out[k.key]}": out[k.key]}
        for flag, value in k.aliases:
            on = out.pop(flag, None)
            if on is None or on is False:
                continue
            if on is not True:
                raise LandscapeError(f"{flag}: expected true or false, got {on!r}")
            chosen[f"--{flag}"] = value
        if len(set(chosen.values())) > 1:
            raise LandscapeError(f"{' and '.join(chosen)} are two ways of running the {k.flag}: choose one")
        if chosen:
            out.pop(k.key, None)
            out[k.name] = next(iter(chosen.values()))
    return out
