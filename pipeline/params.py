"""params.yaml as one typed object: each section is owned by the package that uses it.

An ad-hoc run (`--set train.max_steps=30`) must not replace the versioned results: every output of the
first stage whose params an override changes, and of the stages after it, moves under
`runs/<name>/` (see `ad_hoc_paths`); the stages before it read and keep the versioned paths.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from crawler.config import CrawlConfig
from dataprep.config import PrepareConfig
from pipeline.stages import STAGES
from pipeline.tracking_server import effective_tracking_uri
from tokenmill.config import build, load_yaml
from tokenmill.errors import ConfigError
from training.config import (EvalConfig, EvalSetConfig, ModelConfig, TasksConfig, TokenizeConfig, TrackingConfig,
                             TrainConfig)
from training.finetune.config import FinetuneConfig

DEFAULT_PARAMS = Path("params.yaml")
# Overrides of these sections move no output: the user chose where things go, or where they are logged.
KEEP_PATHS = {"paths", "tracking"}


@dataclass
class PathsConfig:
    """Where each stage reads and writes (dvc.yaml uses the same values through ${paths.*})."""

    sources: str = "sources"  # directory of crawl source YAML files
    sites: str = "data/sites"  # offline sites served during a crawl
    crawl: str = "data/crawl"  # raw WARC + extracted documents
    corpus: str = "data/corpus"  # the prepared, DVC-versioned corpus
    quality_model: str = "models/quality"  # the quality classifier trained from the corpus's decisions
    evalset: str = "data/evalset"  # the evaluation set, versioned on its own ("": none, split by id hash)
    tokens: str = "data/tokens"  # tokenizer + train/val memmaps
    model: str = "models/gpt"  # final model, history, MLflow run id
    checkpoints: str = "models/checkpoints"  # in-progress checkpoints (kept across reruns)
    metrics: str = "metrics.json"  # evaluation metrics (a DVC metric, tracked by git)
    tasks: str = "tasks.json"  # lm-evaluation-harness figures (a DVC metric, tracked by git)
    export: str = "models/hf"  # the model as a Hugging Face transformers directory
    report: str = "report.html"  # the run's report card
    runs: str = "runs"  # outputs of ad-hoc runs (--set overrides), one directory per run


@dataclass
class Params:
    paths: PathsConfig = field(default_factory=PathsConfig)
    crawl: CrawlConfig = field(default_factory=CrawlConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    evalset: EvalSetConfig = field(default_factory=EvalSetConfig)
    tokenize: TokenizeConfig = field(default_factory=TokenizeConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluate: EvalConfig = field(default_factory=EvalConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    # The ad-hoc run's name (outputs under paths.runs/<run>/), None for the versioned run; set by
    # load_params, not a params.yaml key (tokenmill.config.build skips fields marked param=False).
    run: str | None = field(default=None, metadata={"param": False})


def load_params(path: str | Path | None = None, overrides: list[str] = ()) -> Params:
    """Read params.yaml (defaults when the default file is absent) and apply `key.sub=value` overrides.

    With overrides, outputs move to an ad-hoc run's directory (see the module doc). While
    `make mlflow-server` runs, tracking goes through it (pipeline/tracking_server.py)."""
    explicit = path is not None
    path = Path(path) if explicit else DEFAULT_PARAMS
    data = load_yaml(path) if (explicit or path.exists()) else {}
    for override in overrides:
        apply_override(data, override)
    try:
        built = build(Params, data, str(path))
    except ConfigError as exc:
        raise _naming_the_override(exc, str(path), overrides) from None
    params = ad_hoc_paths(built, overrides)
    params.tracking.tracking_uri = effective_tracking_uri(params.tracking.tracking_uri)
    return params


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


def _naming_the_override(exc: ConfigError, where: str, overrides: list[str]) -> ConfigError:
    """A bad value from `--set KEY=VALUE` is the override's mistake, not the params file's: name it
    (`--set train.lr=fast: expected float, got str 'fast'`). Other errors stay as they are."""
    message = str(exc)
    if not overrides or not message.startswith(f"{where}: "):
        return exc
    inner = message[len(where) + 2:]  # "train.lr: expected float ..." or "train: unknown key 'lrr' (known: ...)"
    for override in reversed(overrides):  # of two overrides of a key, the last one was applied
        key = override.partition("=")[0]
        parent, _, leaf = key.rpartition(".")
        if inner.startswith(f"{key}: "):
            return ConfigError(f"--set {override}: {inner[len(key) + 2:]}")
        parts = key.split(".")
        unknown = tuple(f"{'.'.join(parts[:i]) + ': ' if i else ''}unknown key '{parts[i]}'" for i in range(len(parts)))
        if inner.startswith((f"{key}.", f"{key}[", *unknown)):
            return ConfigError(f"--set {override}: {inner}")
        section = f"{parent}: "
        if parent and inner.startswith(section) and leaf in inner[len(section):]:  # a check across a section
            return ConfigError(f"--set {override}: {inner}")
    return exc


def ad_hoc_paths(params: Params, overrides: list[str]) -> Params:
    """Move the outputs an override changes (and everything downstream) under paths.runs/<name>/."""
    sections = {o.partition("=")[0].split(".")[0] for o in overrides} - KEEP_PATHS
    affected = [i for i, stage in enumerate(STAGES) if sections & set(stage.sections)]
    if not affected:  # no override, or only paths/tracking ones: the user chose where things go
        return params
    name = run_name(overrides)
    root = Path(params.paths.runs) / name
    moved = {out: (root / _relative(getattr(params.paths, out))).as_posix()
             for stage in STAGES[min(affected):] if stage.follows_upstream or sections & set(stage.sections)
             for out in stage.paths if getattr(params.paths, out)}
    return replace(params, paths=replace(params.paths, **moved), run=name)


def run_name(overrides: list[str]) -> str:
    """A directory name that says what the run changed, e.g. `train.max_steps=30`."""
    text = ",".join(overrides)
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", text).strip("._") or "run"
    if len(name) > 64 or name != text:
        name = f"{name[:48]}-{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"
    return name


def _relative(path: str) -> Path:
    p = Path(path)
    return Path(*p.parts[1:]) if p.is_absolute() else p
