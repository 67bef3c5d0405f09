"""Configuration as data: the knobs (one declaration gives the field, the CLI option and the
TOML key), a run's config and a sweep's spec, each validated in one place. Nothing here builds
a dataset, a model or an engine (that is `landscape.runs.build`)."""

from landscape.config.run import Replica, RunConfig
from landscape.config.sweep import SweepSpec

__all__ = ["Replica", "RunConfig", "SweepSpec"]
