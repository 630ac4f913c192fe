"""The pipeline's stages, declared once (`STAGES` at the end): name, command, params sections, the data
each reads and writes, and the modules it runs.

Everything else is built from that table: the CLI's stage subcommands (pipeline/cli.py), the Prefect
tasks of the pipeline flow (flows/pipeline.py), the order in which an ad-hoc run moves outputs
(pipeline/params.py) and dvc.yaml itself (`python -m pipeline.dvcfile` writes it; a test checks it is
current). Each stage function takes the loaded params and optional paths that replace the params'
defaults, refuses to replace anything but the stage's own earlier output before doing any work
(tokenmill.stage.check_replaceable), and returns the stage's stats.
"""

from __future__ import annotations

import dataclasses
import sys
import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from tokenmill.locations import join, location
from tokenmill.errors import UserError
from tokenmill.stage import check_replaceable, check_replaceable_file, check_scratch_directory

if TYPE_CHECKING:
    from pipeline.params import Params


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
    check_scratch_directory(out.with_name(out.name + ".partial"), "job.json")  # the crawl deletes a stale one
    return run_crawl(loaded, out, params.crawl, carry_over=others)


def ingest(params: Params, paths: list[str], out: Path, workers: int = 1, limit: int | None = None,
           base_url: str | None = None, source: str = "warc") -> dict:
    """`tokenmill ingest`: web archives into documents as a crawl writes them (crawler/ingest.py), with
    the crawl's extraction settings (params.crawl) and, when prepare.dask.address is set, its Dask workers."""
    from crawler.ingest import ingest as run_ingest

    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    return run_ingest(paths, Path(out), params.crawl, source=source, workers=workers,
                      dask_address=params.prepare.dask.address, limit=limit, base_url=base_url)


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


def classifier(params: Params, corpus: Path | None = None, out: Path | None = None) -> dict:
    """The quality classifier distilled from the corpus's own decisions (`tokenmill quality train --decisions`):
    kept documents as positives, those the quality rules removed as negatives. A corpus that lacks either
    (no rule removed anything) gets a directory that says so instead of a model (the step is off by default)."""
    from dataprep.quality import QualityTrainConfig, decisions_as_examples, train
    from tokenmill.stage import atomic_directory, write_json

    corpus, out = Path(corpus or params.paths.corpus), Path(out or params.paths.quality_model)
    check_replaceable(out, "quality")
    removed = corpus / "removed"
    decided = removed.is_dir() and any(path.is_file() for path in removed.iterdir())  # else nothing was removed
    examples = list(decisions_as_examples(corpus)) if decided else []
    labels = {example.label for example in examples} if decided else {True}
    if labels != {True, False}:
        missing = "rule-removed (negative)" if True in labels else "kept (positive)"
        with atomic_directory(out) as tmp:
            write_json(tmp / "stats.json", {"stage": "quality", "trained": False,
                                            "reason": f"{corpus} has no {missing} documents"})
        print(f"classifier: {corpus} has no {missing} documents; no classifier trained", file=sys.stderr)
        return {"stage": "quality", "trained": False}
    from pipeline.quality import flat_figures, log_to_mlflow

    log = (lambda stats, directory: log_to_mlflow(params.tracking, stats, directory)) if params.tracking.enabled \
        else None
    return {"out": out.as_posix(), **flat_figures(train(examples, out, QualityTrainConfig(), None, log=log))}


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
             eval_set: Path | str | None = None, workers: int | None = None) -> dict:
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

    config = params.tokenize if not workers else dataclasses.replace(params.tokenize, workers=workers)
    return run_tokenize(corpus, out, config, eval_set=Path(eval_set) if eval_set else None)


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
    for path, marker in evaluation_files(out).items():
        check_replaceable_file(path, marker)
    from training.evaluate import evaluate as run_evaluate

    return run_evaluate(model or Path(params.paths.model), Path(tokens or params.paths.tokens), out,
                        params.evaluate, params.tracking)


def evaluation_files(out: Path) -> dict[Path, str]:
    """Every file `tokenmill evaluate` writes (training/evaluate.py), and what its own copy always holds."""
    return {out: '"val_loss"', out.with_name("evaluation.json"): '"eval_set"',
            out.with_name("samples.json"): '"prompt"', out.with_name("samples.md"): "# Samples (seed",
            out.with_name("registry.json"): '"promoted"'}


def evaluate_tasks(params: Params, tasks: str | list[str], model: str | None = None, out: Path | None = None,
                   include_path: Path | None = None, limit: float | None = None) -> dict:
    """lm-evaluation-harness tasks (training/task_eval.py) on a model, merged into `out` (default paths.tasks)."""
    from training.task_eval import evaluate_tasks as run_tasks

    out = Path(out or params.paths.tasks)
    # the file is merged into, never replaced (training/harness.py refuses a file that is not metrics)
    names = [t.strip() for t in tasks.split(",") if t.strip()] if isinstance(tasks, str) else list(tasks)
    return run_tasks(model or Path(params.paths.model), names, out, params.tracking,
                     Path(params.paths.evalset) if params.paths.evalset else None, include_path,
                     int(limit) if limit is not None and limit >= 1 else limit, params.evaluate.batch_size,
                     params.evaluate.device)


def tasks(params: Params, model: str | None = None, out: Path | None = None) -> dict:
    """The `tasks` stage: params.tasks (names, limit) on the trained model, into paths.tasks."""
    return evaluate_tasks(params, params.tasks.names, model, out, None, params.tasks.limit)


def export(params: Params, model: str | None = None, out: Path | None = None, tokenizer: Path | None = None,
           register: bool = False) -> dict:
    """`tokenmill export --format hf` (training/export.py): a transformers directory (default paths.export),
    logged to the model's run."""
    from training.export import export_hf

    out = Path(out or params.paths.export)
    check_replaceable(out, "export")
    return export_hf(model or Path(params.paths.model), out, params.tracking, tokenizer, register, params.evaluate)


def finetune(params: Params, stage: str, data: Path | None = None, base: str | None = None,
             out: Path | None = None, merge: bool | None = None, reward_model: str | None = None) -> dict:
    """`tokenmill finetune STAGE` (training/finetune/registry.py): every default from params.finetune."""
    out = Path(out or Path(params.finetune.out) / stage)
    check_replaceable(out, f"finetune-{stage}")  # before torch loads, and long before training ends
    from training.finetune.run import finetune as run_finetune

    return run_finetune(stage, data, base, out, params.finetune, params.tracking,
                        merge=merge, reward_model=reward_model)


def report(params: Params, out: Path | None = None) -> dict:
    """The run's report card (pipeline/report.py), logged to the run's MLflow run."""
    from pipeline.report import MARKER, write_report

    out = Path(out or params.paths.report)
    check_replaceable_file(out, MARKER)
    return write_report(params, out)


# --- the CLI options of each stage: their dest names are the stage function's parameter names ---------

def _force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="replace whatever is at the output path (default: only this stage's earlier output)")


def _in_out(p: argparse.ArgumentParser, default_in: str, default_out: str) -> None:
    # A URL (s3://bucket/prefix) stays a str: Path would collapse its //.
    p.add_argument("--in", dest="inp", type=location, help=f"input file or directory of shards, or a URL "
                   f"(default: {default_in})")
    p.add_argument("--out", type=location, help=f"output directory or URL (default: {default_out})")


def index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=Path, metavar="DIR", help="dedup index: remove duplicates of every batch "
                   "recorded in DIR, then record this one (default: prepare.index)")


def _comma_list(text: str) -> list[str] | None:
    return [part.strip() for part in text.split(",") if part.strip()] or None


def crawl_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="source name under sources/ or path to a source YAML (default: crawl.sources); "
                        "the other crawl.sources that --out already holds are kept as they are")
    p.add_argument("--out", type=Path, help="output directory (default: paths.crawl)")


def prepare_options(p: argparse.ArgumentParser) -> None:
    from dataprep import registry  # the one list of dataprep steps and their groups

    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "steps (on = in the default prepare.steps):\n" + registry.describe()
    _in_out(p, "paths.crawl/documents", "paths.corpus")
    p.add_argument("--steps", type=_comma_list, help="comma-separated steps to run instead of prepare.steps")
    p.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes (prepare.dask)")
    index_option(p)


def classifier_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, help="prepare output whose decisions label the examples (default: paths.corpus)")
    p.add_argument("--out", type=Path, help="model directory (default: paths.quality_model)")


def evalset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", type=Path, help="corpus to freeze it from (default: paths.corpus; evalset.source wins)")
    p.add_argument("--out", type=Path, help="output directory (default: paths.evalset)")
    p.add_argument("--refresh", action="store_true", help="remake it from the current corpus (default: keep it)")


def tokenize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", type=Path, help="corpus directory (default: paths.corpus)")
    p.add_argument("--out", type=Path, help="output directory (default: paths.tokens)")
    p.add_argument("--eval-set", help="evaluation set directory: the validation split, kept out of training "
                                      "(default: paths.evalset; '': split by document id hash)")
    p.add_argument("--workers", type=int, help="encode in N processes (tokenize.workers; same token files for any N)")


def train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokens", type=Path, help="token directory (default: paths.tokens)")
    p.add_argument("--out", type=Path, help="model directory (default: paths.model)")
    p.add_argument("--checkpoints", type=Path, help="checkpoint directory (default: paths.checkpoints)")
    p.add_argument("--emit-slurm", nargs=2, type=int, metavar=("NODES", "GPUS"),
                   help="write an sbatch script and a torchrun recipe for NODES x GPUS instead of training")
    p.add_argument("--slurm-dir", type=Path, default=Path("slurm"), help="where --emit-slurm writes (default: slurm)")


def evaluate_options(p: argparse.ArgumentParser) -> None:
    from training.local_tasks import add_harness_arguments

    p.add_argument("--model", help="model directory, .ckpt checkpoint, MLflow run id, runs:/ID or "
                                   "models:/NAME@ALIAS (default: paths.model)")
    p.add_argument("--tokens", type=Path, help="token directory (default: paths.tokens)")
    p.add_argument("--out", type=Path, help="metrics file (default: paths.metrics; with --tasks paths.tasks)")
    add_harness_arguments(p)


def evaluate_or_tasks(params: Params, model: str | None = None, tokens: Path | None = None, out: Path | None = None,
                      tasks: str | None = None, include_path: Path | None = None, limit: float | None = None) -> dict:
    """`tokenmill evaluate`: bits-per-byte on the token files, or with --tasks lm-evaluation-harness tasks."""
    if tasks:
        return evaluate_tasks(params, tasks, model, out, include_path, limit)
    return evaluate(params, model, tokens, out)


def tasks_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model directory, .ckpt checkpoint, MLflow run id, runs:/ID or "
                                   "models:/NAME@ALIAS (default: paths.model)")
    p.add_argument("--out", type=Path, help="metrics file (default: paths.tasks)")


def export_options(p: argparse.ArgumentParser) -> None:
    from training.export import add_export_arguments  # the options live with the feature

    add_export_arguments(p)


def report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, help="HTML file (default: paths.report)")


def train_or_emit_slurm(params: Params, tokens: Path | None = None, out: Path | None = None,
                        checkpoints: Path | None = None, emit_slurm: tuple[int, int] | None = None,
                        slurm_dir: Path = Path("slurm"), params_path: Path | None = None,
                        overrides: list[str] = ()) -> dict:
    """`tokenmill train`: train, or with --emit-slurm write the sbatch script and torchrun recipe instead."""
    if not emit_slurm:
        return train(params, tokens, out, checkpoints)
    from pipeline.slurm import emit

    return emit(params, *emit_slurm, params_path=str(params_path or "params.yaml"), overrides=list(overrides),
                out=slurm_dir)


# --- the table ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Output:
    """A path a stage writes: a params.paths field, and how DVC keeps it."""

    path: str  # field of params.paths
    dvc: dict = field(default_factory=dict)  # DVC output options (persist, cache, push)
    note: str = ""  # why, as a comment in dvc.yaml
    metric: bool = False  # a DVC metric (tracked by git) rather than an output
    tracked: bool = True  # False: not in dvc.yaml (this workspace's scratch state, which no clone needs)

    @property
    def pushed(self) -> bool:
        """Whether `dvc push` sends it to the remote, so that a teammate's `dvc pull` gets it."""
        return self.tracked and not self.metric and self.dvc.get("cache", True) and self.dvc.get("push", True)


@dataclass(frozen=True)
class Stage:
    name: str
    help: str
    run: Callable[..., dict]  # (params, **options) -> the stage's stats
    options: Callable[[argparse.ArgumentParser], None]  # its CLI options, named as `run`'s parameters
    cmd: str  # dvc.yaml's command
    sections: tuple[str, ...]  # params sections that change its output (dvc.yaml `params:`)
    reads: tuple[str, ...]  # data it depends on (dvc.yaml deps, ${paths.*} templates)
    code: tuple[str, ...]  # modules it runs: dvc.yaml's code deps are every module these reach
    outputs: tuple[Output, ...]
    note: str = ""  # a comment above the stage in dvc.yaml
    # False: an ad-hoc run moves its output only when it overrides the stage's own params, never because
    # an earlier stage's changed (the evaluation set stays the versioned one for every corpus variant).
    follows_upstream: bool = True
    cli: Callable[..., dict] | None = None  # the CLI's function when it does more than `run` (default: run)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(out.path for out in self.outputs)


# In a stage's reads: one dependency per source of params.yaml's crawl.sources (its YAML file), written
# out by pipeline/dvcfile.py; a file under sources/ that no configured source names is no dependency.
CRAWL_SOURCES = "<crawl.sources>"

STAGES = (
    Stage("crawl", "crawl sources into WARC files and document shards", crawl, crawl_options,
          cmd="tokenmill crawl --out ${paths.crawl}", sections=("crawl",),
          reads=(CRAWL_SOURCES, "${paths.sites}"), code=("crawler.run", "crawler.config"),
          outputs=(Output("crawl", {"push": False}, note="raw pages (WARC) and their text hold whatever the "
                          "sites published, personal data included: cached locally, never sent to the DVC "
                          "remote by `dvc push` (set push: true to opt in)"),)),
    Stage("prepare", "run every configured dataprep step (prepare.steps) in order", prepare, prepare_options,
          cmd="tokenmill prepare --in ${paths.crawl}/documents --out ${paths.corpus}", sections=("prepare",),
          reads=("${paths.crawl}/documents",), code=("dataprep.pipeline", "dataprep.steps"),  # steps: found at run time
          outputs=(Output("corpus"),)),
    Stage("classifier", "train the quality classifier from the corpus's own decisions (the quality_model step's "
          "model)", classifier, classifier_options, cmd="tokenmill classifier --corpus ${paths.corpus} --out "
          "${paths.quality_model}", sections=(), reads=("${paths.corpus}",), code=("dataprep.quality", "pipeline.quality"),
          outputs=(Output("quality_model"),),
          note="The quality classifier, distilled from the rules' decisions on this corpus (kept pages against "
               "those the quality rules removed): it needs no outside labels, so the offline demo makes one. "
               "prepare.quality_model.model names it when the quality_model step is switched on."),
    Stage("evalset", "freeze the evaluation set from the corpus once; kept across corpus versions", evalset,
          evalset_options, cmd="tokenmill evalset --corpus ${paths.corpus} --out ${paths.evalset}",
          sections=("evalset",), reads=("${paths.corpus}",), code=("training.evalset",),
          outputs=(Output("evalset", {"persist": True}),), follows_upstream=False,
          note="The evaluation set, versioned on its own: made from the corpus the first time, then kept. A new "
               "corpus reruns this stage, which keeps the set as it is (persist: DVC does not delete it first), "
               "so its hash in dvc.lock stays the same and every corpus version is evaluated on the same "
               "documents. `tokenmill evalset --refresh` (or deleting the directory) remakes it; `dvc repro` "
               "then records it."),
    Stage("tokenize", "train the BPE tokenizer and write train/val token memmaps", tokenize, tokenize_options,
          cmd="tokenmill tokenize --in ${paths.corpus} --eval-set ${paths.evalset} --out ${paths.tokens}",
          sections=("tokenize",), reads=("${paths.corpus}", "${paths.evalset}"), code=("training.tokenizer",),
          outputs=(Output("tokens"),)),
    Stage("train", "train the GPT (Lightning; devices/strategy/precision from params)", train, train_options,
          cmd="tokenmill train --tokens ${paths.tokens} --out ${paths.model} --checkpoints ${paths.checkpoints}",
          sections=("model", "train", "tracking"), reads=("${paths.tokens}",), code=("training.train",),
          outputs=(Output("model"),
                   Output("checkpoints", tracked=False,
                          note="not a DVC output: this workspace's scratch state, which DVC never deletes, so "
                               "that a killed training resumes (matched by run identity; checkpoints of another "
                               "run are moved aside, never deleted). A teammate's pulled clone has none and "
                               "needs none.")),
          cli=train_or_emit_slurm),
    Stage("evaluate", "validation loss, perplexity, bits-per-byte and samples", evaluate, evaluate_options,
          cmd="tokenmill evaluate --model ${paths.model} --tokens ${paths.tokens} --out ${paths.metrics}",
          sections=("evaluate", "tracking"), reads=("${paths.model}", "${paths.tokens}"),
          code=("training.evaluate",),
          outputs=(Output("metrics", {"cache": False}, metric=True,
                          note="Tracked by git (not the DVC cache): `dvc metrics diff` compares commits and "
                               "experiments."),),
          cli=evaluate_or_tasks),
    Stage("tasks", "lm-evaluation-harness tasks (params.tasks) on the trained model", tasks, tasks_options,
          cmd="tokenmill tasks --model ${paths.model} --out ${paths.tasks}", sections=("tasks", "evaluate", "tracking"),
          reads=("${paths.model}", "${paths.evalset}"), code=("training.task_eval",),
          outputs=(Output("tasks", {"cache": False}, metric=True,
                          note="Tracked by git like metrics.json; the harness's description goes to "
                               "harness.json beside it."),)),
    Stage("export", "write the model as a Hugging Face transformers directory", export, export_options,
          cmd="tokenmill export --model ${paths.model} --out ${paths.export}", sections=("evaluate", "tracking"),
          reads=("${paths.model}",), code=("training.export",), outputs=(Output("export"),),
          note="AutoModelForCausalLM.from_pretrained(paths.export) loads it as is (docs/serving.md)."),
    Stage("report", "write the run's report card (HTML) and log it to its MLflow run", report, report_options,
          cmd="tokenmill report --out ${paths.report}", sections=(),
          # Not the crawl's stats.json, which the report shows when it is there: the raw crawl is never pushed,
          # and a teammate's pulled clone must remake the report without it (a new crawl changes the corpus's).
          reads=("${paths.corpus}/stats.json", "${paths.tokens}/stats.json", "${paths.model}", "${paths.metrics}",
                 "${paths.tasks}"),
          code=("pipeline.report",), outputs=(Output("report"),),
          note="The run's report card (HTML, plots embedded), also logged to the training's MLflow run. The crawl's "
               "stats.json, shown when present, is no dependency: the raw crawl is never pushed, and a pulled "
               "clone remakes the report without it."),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
WIRING = ("pipeline.stages", "pipeline.params")  # every stage's code deps also name these files


def stage(name: str) -> Stage:
    found = {s.name: s for s in STAGES}
    if name not in found:
        raise UserError(f"unknown stage {name!r} (known: {', '.join(found)})")
    return found[name]
