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


@dataclass
class ExactDedupConfig:
    normalize_text: bool = True  # compare case-folded text with whitespace collapsed, not raw bytes


@dataclass
class NearDedupConfig:
    ngram_size: int = 5  # shingles are word n-grams of this size (lower-cased)
    bands: int = 14  # LSH bands; with rows=8 the similarity threshold is about (1/14)^(1/8) ≈ 0.72
    rows: int = 8  # MinHash values per band (num_perm = bands × rows = 112)
    seed: int = 1  # seed of the MinHash permutations
    min_jaccard: float = 0.7  # candidate pairs must also have estimated Jaccard ≥ this (0 trusts LSH alone)

    def __post_init__(self) -> None:
        if self.ngram_size < 1 or self.bands < 2 or self.rows < 1:
            raise ValueError("near_dedup needs ngram_size ≥ 1, bands ≥ 2 and rows ≥ 1")
        if not 0.0 <= self.min_jaccard <= 1.0:
            raise ValueError(f"near_dedup.min_jaccard must be within [0, 1], got {self.min_jaccard}")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows




@dataclass
class PrepareBase:
    """Stage-wide keys; each registered step adds its own section (see `prepare_config_class`)."""

    steps: list[str] = field(default_factory=lambda: registry.default_steps())  # run in this order
    shard_size: int = 10_000  # documents per output Parquet shard

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
