"""Progress of long work: position, rate and time left, on a terminal or in a log.

On a terminal a click progress bar; otherwise (a log file, a pipe, a batch job) one line
every `every` seconds. Updated from every step, throttled here.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import click


class StepBar:
    """Steps done of `total`, with steps/s and time left; nothing is drawn before the first
    step, so an error raised before any step is still the only line printed."""

    def __init__(self, total: int, start: int = 0, label: str = "recording", every: float = 5.0, stream=None):
        self.total, self.start, self.label, self.every = total, start, label, every
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar: Any = None
        self.t0 = self.last = time.perf_counter()
        self.done = self.pending = 0

    def __call__(self, n: int):
        self.done += n
        self.pending += n
        now = time.perf_counter()
        if now - self.last < (0.2 if self.tty else self.every) and self.start + self.done < self.total:
            return
        self.last = now
        rate = self.done / max(now - self.t0, 1e-9)
        left = (self.total - self.start - self.done) / max(rate, 1e-9)
        if self.tty:
            if self.bar is None:
                self.bar = click.progressbar(length=self.total, label=self.label, file=self.stream, show_pos=True)
                self.bar.__enter__()
                self.bar.update(self.start)
            self.bar.label = f"{self.label} {rate:,.0f} steps/s, {fmt_time(left)} left"
            self.bar.update(self.pending)
        else:
            pos = self.start + self.done
            click.echo(
                f"{self.label}: step {pos:,}/{self.total:,} ({100 * pos / self.total:.0f} %), "
                f"{rate:,.0f} steps/s, {fmt_time(left)} left",
                file=self.stream,
            )
        self.pending = 0

    def close(self):
        if self.done == 0:
            return None
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
        return self.done / max(time.perf_counter() - self.t0, 1e-9)


def fmt_time(sec: float) -> str:
    if sec < 120:
        return f"{sec:.0f} s"
    if sec < 7200:
        return f"{sec / 60:.1f} min"
    if sec < 172800:
        return f"{sec / 3600:.1f} h"
    return f"{sec / 86400:.1f} days"
