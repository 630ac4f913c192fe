"""Each stage's wiring, once: which params sections it reads, which paths it writes, and how it runs.

The CLI (pipeline/cli.py) and the Prefect tasks (flows/) both call these functions; dvc.yaml names
the same paths through ${paths.*}. Every function takes the loaded params and optional paths that
replace the params' defaults, refuses to replace anything but the stage's own earlier output
before doing any work (tokenmill.stage.check_replaceable), and returns the stage's stats.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tokenmill.locations import join, location
from tokenmill.errors import UserError
from tokenmill.stage import check_replaceable, check_replaceable_file

if TYPE_CHECKING:
    from pipeline.params import Params


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # params sections that change its output (dvc.yaml `params:`)
    outputs: tuple[str, ...]  # fields of params.paths it writes
    # False: an ad-hoc run moves its output only when it overrides the stage's own params, never because
    # an earlier stage's changed (the evaluation set stays the versioned one for every corpus variant).
    follows_upstream: bool = True


STAGES = (
    Stage("crawl", ("crawl",), ("crawl",)),
    Stage("prepare", ("prepare",), ("corpus",)),
    Stage("evalset", ("evalset",), ("evalset",), follows_upstream=False),
    Stage("tokenize", ("tokenize",), ("tokens",)),
    Stage("train", ("model", "train"), ("model", "checkpoints")),
    Stage("evaluate", ("evaluate",), ("metrics",)),
    Stage("report", (), ("report",)),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def crawl(params: Params, sources: list[str] | None = None, out: Path | None = None) -> dict:
    """Every `crawl.sources`; or only `sources`, the other `crawl.sources` that `out` already
    holds carried over as they are (one source refreshed in the shared crawl output)."""
    from crawler.config import load_source
    from crawler.run import crawl as run_crawl, crawled_index

    out = Path(out or params.paths.crawl)
    loaded = [load_source(name, Path(params.paths.sources)) for name in (sources or params.crawl.sources)]
    names = {source.name for source in loaded}
    others = [load_source(name, Path(params.paths.sources)) for name in params.crawl.sources
              if sources and name not in names and crawled_index(out, name).exists()]
    check_replaceable(out, "crawl")
    return run_crawl(loaded, out, params.crawl, carry_over=others)


def prepare(params: Params, inp: Path | str | None = None, out: Path | str | None = None,
            steps: list[str] | None = None, workers: int | None = None,
            index: Path | None = None) -> dict:
    """`workers`: a local Dask cluster of that many processes (else prepare.dask); `index`: a dedup
    index directory that earlier batches were recorded in (else prepare.index). `inp` and `out` may be
    URLs (s3://bucket/prefix: read and written through fsspec, see tokenmill/documents.py)."""
    from dataprep.pipeline import run

    out = location(out or params.paths.corpus)
    check_replaceable(out, "prepare")
    if workers is not None:
        if workers < 1:
            raise UserError(f"--workers must be at least 1, got {workers}")
        params.prepare.dask.workers = workers
    return run(location(inp or join(location(params.paths.crawl), "documents")), out, params.prepare, steps,
               index=index)


def step_group(params: Params, group: str, inp: Path | str | None, out: Path | str | None,
               index: Path | None = None) -> dict:
    """`tokenmill normalize|filter|dedup|scrub`: a named group of prepare steps into a directory of its own."""
    from dataprep.pipeline import step_groups

    if out is None:
        raise UserError("--out is required")
    return prepare(params, inp, out, step_groups()[group], index=index)


def evalset(params: Params, corpus: Path | None = None, out: Path | None = None, refresh: bool = False) -> dict:
    """The evaluation set (training/evalset.py): made once from the corpus (or evalset.source), then kept
    whatever the corpus becomes; `refresh` remakes it."""
    out = Path(out or params.paths.evalset or "")
    if not out.name:
        raise UserError("paths.evalset is empty: there is no evaluation set to make (set it, or --out DIR)")
    check_replaceable(out, "evalset")
    from training.evalset import make_evalset

    return make_evalset(Path(corpus or params.paths.corpus), out, params.evalset, refresh=refresh)


def tokenize(params: Params, inp: Path | None = None, out: Path | None = None,
             eval_set: Path | str | None = None) -> dict:
    """`eval_set`: the evaluation set directory (default paths.evalset; "": none, split by document id).
    One that is not there yet is made first from this corpus, as `tokenmill evalset` would."""
    out = Path(out or params.paths.tokens)
    check_replaceable(out, "tokenize")
    corpus = Path(inp or params.paths.corpus)
    eval_set = params.paths.evalset if eval_set is None else str(eval_set)
    if eval_set and not (Path(eval_set) / "meta.json").is_file():
        made = evalset(params, corpus, Path(eval_set))
        print(f"tokenize: made the evaluation set {eval_set} from {corpus} ({made['documents']} documents)",
              file=sys.stderr)
    from training.tokenizer import tokenize as run_tokenize

    return run_tokenize(corpus, out, params.tokenize, eval_set=Path(eval_set) if eval_set else None)


def train(params: Params, tokens: Path | None = None, out: Path | None = None,
          checkpoints: Path | None = None) -> dict:
    out = Path(out or params.paths.model)
    check_replaceable(out, "train")  # before torch and Lightning load: a refusal is immediate
    from training.train import train as run_train

    return run_train(Path(tokens or params.paths.tokens), out, params.train, params.model, params.tracking,
                     checkpoints=Path(checkpoints or params.paths.checkpoints))


def train_command(params_path: str, overrides: list[str]) -> list[str]:
    """Training as its own process (Lightning's DDP launcher re-runs the calling command per rank)."""
    sets = [arg for override in overrides for arg in ("--set", override)]
    return [sys.executable, "-m", "pipeline.cli", "train", "--params", str(params_path), *sets]


def evaluate(params: Params, model: Path | str | None = None, tokens: Path | None = None,
             out: Path | None = None) -> dict:
    """`model`: a model directory, a .ckpt checkpoint, an MLflow run id, runs:/ID or models:/NAME@ALIAS."""
    out = Path(out or params.paths.metrics)
    check_replaceable_file(out, '"val_loss"')
    check_replaceable_file(out.with_name("samples.json"), '"prompt"')
    from training.evaluate import evaluate as run_evaluate

    return run_evaluate(model or Path(params.paths.model), Path(tokens or params.paths.tokens), out,
                        params.evaluate, params.tracking)


def evaluate_tasks(params: Params, tasks: str, model: str | None = None, out: Path | None = None,
                   include_path: Path | None = None, limit: float | None = None) -> dict:
    """`tokenmill evaluate --tasks`: lm-evaluation-harness tasks (training/harness.py), merged into metrics.json."""
    from training.harness import evaluate_tasks as run_tasks

    out = Path(out or params.paths.metrics)
    # metrics.json is merged into, never replaced (training/harness.py refuses a file that is not one)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    return run_tasks(model or Path(params.paths.model), names, out, params.tracking,
                     Path(params.paths.evalset) if params.paths.evalset else None, include_path,
                     int(limit) if limit is not None and limit >= 1 else limit, params.evaluate.batch_size,
                     params.evaluate.device)


def export(params: Params, model: str | None, out: Path, tokenizer: Path | None = None,
           register: bool = False) -> dict:
    """`tokenmill export --format hf` (training/export.py): a transformers directory, logged to the model's run."""
    from training.export import export_hf

    return export_hf(model or Path(params.paths.model), out, params.tracking, tokenizer, register, params.evaluate)


def finetune(params: Params, stage: str, data: Path | None = None, base: str | None = None,
             out: Path | None = None, merge: bool | None = None, reward_model: str | None = None) -> dict:
    """`tokenmill finetune sft|reward|dpo` (training/finetune): every default from params.finetune."""
    from training.finetune.run import finetune as run_finetune

    return run_finetune(stage, data, base, out, params.finetune, params.tracking,
                        merge=merge, reward_model=reward_model)


def report(params: Params, out: Path | None = None) -> dict:
    """The run's report card (pipeline/report.py), logged to the run's MLflow run."""
    from pipeline.report import MARKER, write_report

    out = Path(out or params.paths.report)
    check_replaceable_file(out, MARKER)
    return write_report(params, out)
