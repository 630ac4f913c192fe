"""The `prepare:` section of params.yaml: which steps run, in what order, with which thresholds.

`PrepareConfig` is built from the step registry: `steps`, `shard_size` (and other stage-wide keys of
`PrepareBase`) plus one section per registered step, typed by the config dataclass the step's own
file declares (`prepare.quality` ← `dataprep/steps/gopher_quality.py:QualityConfig`).

Defaults follow the Gopher paper (Rae et al. 2021, appendix A) and datatrove's implementations,
checked against real web text and the offline demo (the Debian Administrator's Handbook in
en-US, fa-IR and pl-PL), where most real prose pages survive.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

from dataprep import registry
from dataprep.distributed import DaskConfig


@dataclass
class PrepareBase:
    """Stage-wide keys; each registered step adds its own section (see `prepare_config_class`)."""

    steps: list[str] = field(default_factory=lambda: registry.default_steps())  # run in this order
    shard_size: int = 10_000  # documents per output Parquet shard
    index: str = ""  # dedup index directory (--index): dedup against every batch recorded there, then record
    dask: DaskConfig = field(default_factory=DaskConfig)  # --workers N, or dask.address of a scheduler
    keep_signals: bool = False  # filters write what they measured as columns (tokenmill select re-decides)
    replay_signals: bool = False  # set by tokenmill select: filters decide from the stored columns

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be positive, got {self.shard_size}")
        known = registry.steps()
        unknown = [s for s in self.steps if s not in known]
        if unknown:
            raise ValueError(f"steps: unknown step '{unknown[0]}' (known: {', '.join(known)})")


@functools.cache
def prepare_config_class() -> type:
    """PrepareBase plus a `<step name>: <its config>` field for every registered step with settings."""
    fields = [
        (name, spec.config, field(default_factory=spec.config))
        for name, spec in registry.steps().items()
        if spec.config is not None
    ]
    cls = dataclasses.make_dataclass("PrepareConfig", fields, bases=(PrepareBase,))
    cls.__module__ = __name__
    return cls


def __getattr__(name: str) -> Any:
    """`PrepareConfig`, `DEFAULT_STEPS` and each step's config class (e.g. `QualityConfig`), on demand."""
    if name == "PrepareConfig":
        return prepare_config_class()
    if name == "DEFAULT_STEPS":
        return registry.default_steps()
    for spec in registry.steps().values():
        if spec.config is not None and spec.config.__name__ == name:
            return spec.config
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
