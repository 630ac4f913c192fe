"""params.yaml as one typed object: each section is owned by the package that uses it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crawler.config import CrawlConfig
from dataprep.config import PrepareConfig
from tokenmill.config import build, load_yaml
from tokenmill.errors import ConfigError
from training.config import EvalConfig, ModelConfig, TokenizeConfig, TrackingConfig, TrainConfig
from training.finetune.config import FinetuneConfig

DEFAULT_PARAMS = Path("params.yaml")


@dataclass
class PathsConfig:
    """Where each stage reads and writes (dvc.yaml uses the same values through ${paths.*})."""

    sources: str = "sources"  # directory of crawl source YAML files
    sites: str = "data/sites"  # offline sites served during a crawl
    crawl: str = "data/crawl"  # raw WARC + extracted documents
    corpus: str = "data/corpus"  # the prepared, DVC-versioned corpus
    tokens: str = "data/tokens"  # tokenizer + train/val memmaps
    model: str = "models/gpt"  # final model, history, MLflow run id
    checkpoints: str = "models/checkpoints"  # in-progress checkpoints (kept across reruns)
    metrics: str = "metrics.json"  # evaluation metrics (a DVC metric)


@dataclass
class Params:
    paths: PathsConfig = field(default_factory=PathsConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


def load_params(path: str | Path | None = None, overrides: list[str] = ()) -> Params:
    """Read params.yaml (defaults when the default file is absent) and apply `key.sub=value` overrides."""
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_PARAMS
    data = load_yaml(path) if (explicit or path.exists()) else {}
    for override in overrides:
        apply_override(data, override)
    return build(Params, data, str(path))


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set a dotted key in a nested mapping from `a.b.c=value` (value parsed as YAML)."""
    key, sep, raw = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {override!r}: expected KEY=VALUE, e.g. train.max_steps=100")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {override!r}: '{part}' is not a section")
    node[leaf] = value
