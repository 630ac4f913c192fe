"""`tokenmill`: one subcommand per stage; every option defaults from params.yaml.

Exit status: 0 done; 2 a mistake to fix (UserError: bad input, params or environment), printed on
one line; 75 (EX_TEMPFAIL) a fault that may pass on its own (TransientError), also one line, so that
schedulers retry it; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from pipeline import stages
from tokenmill.locations import location
from tokenmill.errors import TransientError, UserError
from tokenmill.stage import replacing_anything

EXIT_USER_ERROR = 2
EXIT_TRANSIENT = 75  # sysexits.h EX_TEMPFAIL: try again later
EXIT_INTERRUPTED = 130

def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    return run_reporting_errors(args.command, lambda: _run(args))


def run_reporting_errors(command: str, work: Callable[[], object]) -> int:
    """Run `work`; print a user's mistake or a transient fault on one line and return the exit status."""
    try:
        work()
        return 0
    except UserError as exc:
        print(f"tokenmill {command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except TransientError as exc:
        print(f"tokenmill {command}: error (transient, retry later): {exc}", file=sys.stderr)
        return EXIT_TRANSIENT
    except KeyboardInterrupt:
        print(f"tokenmill {command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> None:
    from pipeline.params import load_params

    params = load_params(args.params, args.overrides)
    started = time.perf_counter()
    with replacing_anything() if getattr(args, "force", False) else contextlib.nullcontext():
        result = args.handler(args, params)
    print(f"tokenmill {args.command}: done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    if result is not None:
        print(json.dumps(result, indent=2, ensure_ascii=False, default=str) if args.json else one_line(result))


def one_line(result: dict) -> str:
    """The scalar figures of a stage's result on one line; the whole of it is in its stats.json."""
    parts = [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
             for key, value in result.items() if isinstance(value, (int, float, str)) or value is None]
    if result.get("removed"):
        parts.append("removed=" + ",".join(f"{k}:{v}" for k, v in result["removed"].items()))
    return " ".join(parts)


def add_params_options(p: argparse.ArgumentParser) -> None:
    """--params and --set: shared by every subcommand and by `python -m flows.pipeline`."""
    p.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, e.g. --set train.max_steps=100 (repeatable); the run's outputs "
                        "then go under paths.runs/<overrides>/ instead of the versioned paths")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenmill",
        description="Web text to a trained, evaluated language model. Options default from params.yaml.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        add_params_options(p)
        p.add_argument("--json", action="store_true", help="print the full result (stats) as JSON")
        return p

    def stage(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        p = command(name, handler, help)
        p.add_argument("--force", action="store_true",
                       help="replace whatever is at the output path (default: only this stage's earlier output)")
        return p

    p = stage("crawl", run_crawl, "crawl sources into WARC files and document shards")
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="source name under sources/ or path to a source YAML (default: crawl.sources); "
                        "the other crawl.sources that --out already holds are kept as they are")
    p.add_argument("--out", type=Path, help="output directory (default: paths.crawl)")

    from dataprep import registry  # the one list of dataprep steps and their groups

    p = stage("prepare", run_prepare, "run every configured dataprep step (prepare.steps) in order")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = "steps (on = in the default prepare.steps):\n" + registry.describe()
    _in_out(p, "paths.crawl/documents", "paths.corpus")
    p.add_argument("--steps", help="comma-separated steps to run instead of prepare.steps")
    p.add_argument("--workers", type=int, help="run on a local Dask cluster of N worker processes (prepare.dask)")
    _index_option(p)
    for name, text in registry.GROUPS.items():
        _in_out(g := stage(name, run_step_group, text), "paths.crawl/documents", f"{name} output")
        if name == "dedup":
            _index_option(g)

    p = stage("evalset", run_evalset, "freeze the evaluation set from the corpus once; kept across corpus versions")
    p.add_argument("--corpus", type=Path, help="corpus to freeze it from (default: paths.corpus; evalset.source wins)")
    p.add_argument("--out", type=Path, help="output directory (default: paths.evalset)")
    p.add_argument("--refresh", action="store_true", help="remake it from the current corpus (default: keep it)")

    p = stage("tokenize", run_tokenize, "train the BPE tokenizer and write train/val token memmaps")
    _in_out(p, "paths.corpus", "paths.tokens")
    p.add_argument("--eval-set", help="evaluation set directory: the validation split, kept out of training "
                                      "(default: paths.evalset; '': split by document id hash)")

    p = stage("train", run_train, "train the GPT (Lightning; devices/strategy/precision from params)")
    p.add_argument("--tokens", type=Path, help="token directory (default: paths.tokens)")
    p.add_argument("--out", type=Path, help="model directory (default: paths.model)")
    p.add_argument("--checkpoints", type=Path, help="checkpoint directory (default: paths.checkpoints)")
    p.add_argument("--emit-slurm", nargs=2, type=int, metavar=("NODES", "GPUS"),
                   help="write an sbatch script and a torchrun recipe for NODES x GPUS instead of training")
    p.add_argument("--slurm-dir", type=Path, default=Path("slurm"), help="where --emit-slurm writes (default: slurm)")

    p = stage("evaluate", run_evaluate, "validation loss, perplexity, bits-per-byte and samples")
    p.add_argument("--model", help="model directory, .ckpt checkpoint, MLflow run id, runs:/ID or "
                                    "models:/NAME@ALIAS (default: paths.model)")
    p.add_argument("--tokens", type=Path, help="token directory (default: paths.tokens)")
    p.add_argument("--out", type=Path, help="metrics file (default: paths.metrics)")
    from training.local_tasks import add_harness_arguments

    add_harness_arguments(p)

    from training.export import add_export_arguments  # tokenmill export: the options live with the feature

    add_export_arguments(stage("export", run_export, "write a model as a Hugging Face transformers directory"))

    from training import commands as serving  # generate, serve: their options live with them

    serving.add_generate_arguments(command("generate", serving.run_generate, "continue a prompt with a model"))
    serving.add_serve_arguments(command("serve", serving.run_serve, "OpenAI-compatible API and a chat page"))

    command("models", run_models, "registered model versions with their bits-per-byte; which is champion")

    p = command("finetune", run_finetune, "post-training: supervised fine-tuning, reward model or DPO")
    p.add_argument("stage", choices=["sft", "reward", "dpo"], help="what to train")
    p.add_argument("--data", type=Path, help="JSONL data (default: finetune.sft_data or finetune.preference_data)")
    p.add_argument("--base", help="model directory, MLflow run id or 'champion' (default: finetune.base; "
                                   "dpo: finetune.sft_model, also its frozen reference)")
    p.add_argument("--out", type=Path, help="output directory (default: finetune.out/STAGE)")
    p.add_argument("--merge", action="store_true", default=None, help="write LoRA merged into a plain model")
    p.add_argument("--reward-model", help="dpo: reward model judging the win rate (default: finetune.dpo.reward_model)")

    command("summary", run_summary, "print documents per stage, evaluation figures and the MLflow run")

    p = stage("report", run_report, "write the run's report card (HTML) and log it to its MLflow run")
    p.add_argument("--out", type=Path, help="HTML file (default: paths.report)")

    p = command("flow", run_flow, "run the whole pipeline as a Prefect flow (python -m flows.pipeline)")
    p.add_argument("name", choices=["pipeline"], help="flow to run")

    # crawl sources (crawler/sources.py): list them, or check source files
    p = command("sources", run_sources, "list the crawl sources, or validate source files")
    p.add_argument("action", choices=["list", "validate"], help="list: name, start URLs, budget, last crawl; "
                   "validate: every problem of the files, one line each (non-zero exit if any)")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE",
                   help="source files to validate (default: every file under paths.sources)")
    add_operations_commands(command)
    return parser


def add_operations_commands(command: Callable) -> None:
    """corpus, status, compare, sweep: looking after versions and runs rather than running a stage."""
    p = command("corpus", run_corpus, "corpus versions (git history of dvc.lock, corpus-vN tags): list or check out")
    p.add_argument("action", choices=["list", "checkout"])
    p.add_argument("version", nargs="?", help="for checkout: corpus-vN, a commit or a DVC hash prefix")
    command("status", run_status, "sources and their last crawl, corpus versions, the champion and its figures")
    p = command("compare", run_compare, "two MLflow runs: params diff, metrics, corpus versions, loss curves (HTML)")
    p.add_argument("runs", nargs=2, metavar="RUN_ID")
    p.add_argument("--out", type=Path, default=Path("compare.html"), help="HTML file (default: compare.html)")
    p = command("sweep", run_sweep, "a grid of DVC experiments as a Prefect flow (python -m flows.sweep)")
    p.add_argument("grid", nargs="+", metavar="KEY=V1,V2", help="e.g. train.lr=0.001,0.002 (one point per value)")
    p.add_argument("--parallel", type=int, default=2, help="experiments at once (default: 2)")


def _index_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", type=Path, metavar="DIR", help="dedup index: remove duplicates of every batch "
                   "recorded in DIR, then record this one (default: prepare.index)")


def _in_out(p: argparse.ArgumentParser, default_in: str, default_out: str) -> None:
    # A URL (s3://bucket/prefix) stays a str: Path would collapse its //.
    p.add_argument("--in", dest="inp", type=location, help=f"input file or directory of shards, or a URL "
                   f"(default: {default_in})")
    p.add_argument("--out", type=location, help=f"output directory or URL (default: {default_out})")


def run_crawl(args, params):
    return stages.crawl(params, args.sources, args.out)


def run_prepare(args, params):
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    return stages.prepare(params, args.inp, args.out, steps, workers=args.workers, index=args.index)


def run_step_group(args, params):
    return stages.step_group(params, args.command, args.inp, args.out, index=getattr(args, "index", None))


def run_evalset(args, params):
    return stages.evalset(params, args.corpus, args.out, refresh=args.refresh)


def run_tokenize(args, params):
    return stages.tokenize(params, args.inp, args.out, eval_set=args.eval_set)


def run_train(args, params):
    if args.emit_slurm:
        from pipeline.slurm import emit

        return emit(params, *args.emit_slurm, params_path=str(args.params or "params.yaml"),
                    overrides=args.overrides, out=args.slurm_dir)
    return stages.train(params, args.tokens, args.out, args.checkpoints)


def run_evaluate(args, params):
    if args.tasks:
        return stages.evaluate_tasks(params, args.tasks, args.model, args.out, args.include_path, args.limit)
    return stages.evaluate(params, args.model, args.tokens, args.out)


def run_export(args, params):
    return stages.export(params, args.model, args.out, args.tokenizer, args.register)


def run_models(args, params):
    from training.registry import format_models, list_models

    rows = list_models(params.tracking)
    if args.json:
        return {"model": params.tracking.registered_model, "versions": rows}
    print(format_models(params.tracking.registered_model, rows))


def run_finetune(args, params):
    return stages.finetune(params, args.stage, args.data, args.base, args.out,
                           merge=args.merge, reward_model=args.reward_model)


def run_summary(args, params):
    from pipeline.summary import summarize

    print(summarize(params))


def run_sources(args, params):
    from crawler.sources import format_rows, list_sources, source_files, validate

    if args.action == "list":
        rows = list_sources(Path(params.paths.sources), Path(params.paths.crawl))
        print(format_rows(rows) if rows else f"no sources in {params.paths.sources}/")
        return None
    files = args.files or source_files(Path(params.paths.sources))
    errors = validate(files)
    for error in errors:
        print(error, file=sys.stderr)
    if errors:
        raise UserError(f"{len(errors)} problem(s) in {len(files)} source file(s)")
    print(f"{len(files)} source file(s) valid")
    return None


def run_report(args, params):
    return stages.report(params, args.out)


def run_corpus(args, params):
    from pipeline import corpus

    if args.action == "list":
        found = corpus.versions(params)
        if args.json:
            return {"versions": [vars(v) for v in found]}
        print(corpus.format_versions(found))
        return None
    if not args.version:
        raise UserError("corpus checkout: name a VERSION (see `tokenmill corpus list`)")
    version = corpus.checkout(params, args.version)
    return {"checked_out": version.name, "md5": version.md5, "commit": version.commit}


def run_status(args, params):
    from pipeline.status import format_status, status

    found = status(params)
    if args.json:
        return found
    print(format_status(found))
    return None


def run_compare(args, params):
    from pipeline.compare import write_comparison

    return write_comparison(params.tracking, *args.runs, args.out)


def run_sweep(args, params):
    """The sweep flow runs in its own process, like `tokenmill flow` (the CLI never imports flows/)."""
    command = [sys.executable, "-m", "flows.sweep", "--params", str(args.params or "params.yaml"),
               "--parallel", str(args.parallel), *args.grid]
    returncode = subprocess.call(command)
    if returncode:
        raise SystemExit(returncode)


def run_flow(args, params):
    """The flow runs in its own process: the CLI sits below flows/ and never imports it."""
    command = [sys.executable, "-m", f"flows.{args.name}", "--params", str(args.params or "params.yaml")]
    command += [arg for override in args.overrides for arg in ("--set", override)]
    returncode = subprocess.call(command)
    if returncode:
        raise SystemExit(returncode)


if __name__ == "__main__":
    sys.exit(main())
