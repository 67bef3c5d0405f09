"""A progress bar for recordings that shows steps/s."""

from __future__ import annotations

import sys
import time

import click


class StepBar:
    """A click progress bar that shows steps/s; drawn from the first flush on, so an
    error raised before any step is still the only line printed."""

    def __init__(self, total: int, start: int = 0):
        self.total, self.start, self.bar = total, start, None
        self.t0, self.done = time.perf_counter(), 0

    def __call__(self, n):
        if self.bar is None:
            self.bar = click.progressbar(length=self.total, label="recording", file=sys.stderr, show_pos=True)
            self.bar.__enter__()
            self.bar.update(self.start)
        self.done += n
        rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
        self.bar.label = f"recording {rate:,.0f} steps/s"
        self.bar.update(n)

    def close(self):
        if self.bar is None:
            return None
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
