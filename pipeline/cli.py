"""`tokenmill`: one subcommand per stage; every option defaults from params.yaml.

Exit status: 0 done; 2 a mistake to fix (UserError: bad input, params or environment), printed on
one line; 75 (EX_TEMPFAIL) a fault that may pass on its own (TransientError), also one line, so that
schedulers retry it; 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from crawler import ingest_cli  # tokenmill ingest's options, without the ingest's libraries
from pipeline import ablate, quality, reproduce, stages
from training import commands as serving  # generate, serve: light until one runs
from training.finetune.cli import add_arguments as finetune_arguments
from tokenmill.locations import location
from tokenmill.errors import TransientError, UserError
from tokenmill.stage import replacing_anything

EXIT_USER_ERROR = 2
EXIT_TRANSIENT = 75  # sysexits.h EX_TEMPFAIL: try again later
EXIT_INTERRUPTED = 130

def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the `tokenmill` program itself (not a caller in a process of its own)
        quiet_library_bars()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USER_ERROR
    return run_reporting_errors(args.command, lambda: _run(args))


def quiet_library_bars() -> None:
    """A piped log (dvc repro > log) gets tokenmill's own progress lines, not the bars of the libraries it
    calls (lm-eval, datasets, transformers): tqdm and datasets read these when they are first imported,
    which is later than this (nothing here imports them)."""
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


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
    for stage in stages.STAGES:
        add_command(sub, stage.name, stage.help, stage.options, stage_handler(stage), force=True)
    for name, help, options, handler, force in COMMANDS:
        add_command(sub, name, help, options, handler, force=force)
    return parser


def add_command(sub, name: str, help: str, options: Callable, handler: Callable, force: bool = False) -> None:
    """One subcommand: its own options, then --params/--set/--json (and --force for those that write)."""
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(handler=handler)
    options(p)
    add_params_options(p)
    p.add_argument("--json", action="store_true", help="print the full result (stats) as JSON")
    if force:
        p.add_argument("--force", action="store_true",
                       help="replace a file at the output path; move anything else there aside to <out>.aside-<time> "
                            "(default: replace only this stage's earlier output)")


def stage_handler(stage: stages.Stage) -> Callable:
    """Call the stage's function with the CLI options named as its parameters."""
    run = stage.cli or stage.run

    def handler(args, params):
        given = {**vars(args), "params_path": args.params}  # `params` is the loaded params, not the file
        if stage.name == "prepare":
            given["inp"] = crawl_documents(given.get("inp"))
        return run(params, **{name: given[name] for name in inspect.signature(run).parameters
                              if name != "params" and name in given})

    return handler


def run_ingest(args, params):
    return stages.ingest(params, args.paths, args.out, workers=args.workers, limit=args.limit,
                         base_url=args.base_url, source=args.source)


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


def run_step_group(args, params):
    return stages.step_group(params, args.command, crawl_documents(args.inp), args.out,
                             index=getattr(args, "index", None))


def crawl_documents(inp: Path | str | None) -> Path | str | None:
    """`--in data/crawl` (a crawl's output: stats.json, documents/, warc/, ...) means its documents/."""
    if not isinstance(inp, Path) or not inp.is_dir() or not (inp / "documents").is_dir():
        return inp
    from tokenmill.documents import DOCUMENT_SUFFIXES

    if any(p.is_file() and p.name.endswith(DOCUMENT_SUFFIXES) for p in inp.iterdir()):
        return inp  # shards of its own: a directory of documents that happens to have a documents/ too
    print(f"reading {inp / 'documents'} (the documents of the crawl at {inp})", file=sys.stderr)
    return inp / "documents"


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
    # --set KEY=V holds for every point: a grid axis of one value (dvc exp run -S KEY=V for each experiment)
    command = [sys.executable, "-m", "flows.sweep", "--params", str(args.params or "params.yaml"),
               "--parallel", str(args.parallel), *args.grid, *args.overrides]
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


# --- the commands that are not pipeline stages (those come from pipeline/stages.py) -----------------------

def step_group_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", type=location, help="input file or directory of shards, or a URL "
                   "(default: paths.crawl/documents)")
    p.add_argument("--out", type=location, help="output directory or URL (required)")
    if p.prog.endswith(" dedup"):
        stages.index_option(p)


def flow_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", choices=["pipeline"], help="flow to run")


def sources_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "validate"], help="list: name, start URLs, budget, last crawl; "
                   "validate: every problem of the files, one line each (non-zero exit if any)")
    p.add_argument("files", nargs="*", type=Path, metavar="FILE",
                   help="source files to validate (default: every file under paths.sources)")


def corpus_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "checkout"])
    p.add_argument("version", nargs="?", help="for checkout: corpus-vN, a commit or a DVC hash prefix")


def compare_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs=2, metavar="RUN_ID")
    p.add_argument("--out", type=Path, default=Path("compare.html"), help="HTML file (default: compare.html)")


def sweep_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", nargs="+", metavar="KEY=V1,V2", help="e.g. train.lr=0.001,0.002 (one point per value)")
    p.add_argument("--parallel", type=int, default=2, help="experiments at once (default: 2)")


def no_options(p: argparse.ArgumentParser) -> None:
    pass


def step_group_commands() -> list[tuple]:
    from dataprep import registry  # the one list of dataprep steps and their groups

    return [(name, text, step_group_options, run_step_group, True) for name, text in registry.GROUPS.items()]


# (name, help, options, handler, takes --force); the pipeline's stages come first, from pipeline/stages.py
COMMANDS = [
    ("ingest", ingest_cli.HELP, ingest_cli.add_arguments, run_ingest, True),
    *step_group_commands(),
    ("quality", "train the quality classifier (prepare.quality_model)", quality.add_arguments, quality.run, False),
    ("select", "decide again from a corpus's kept signals (prepare.keep_signals) with other thresholds, without "
     "measuring again", quality.add_select_arguments, quality.run_select, False),  # it has its own --force
    ("ablate", "compare data choices by the proxy model each gives (one MLflow parent run, a child per variant)",
     ablate.add_arguments, ablate.run, False),
    ("generate", "continue a prompt with a model", serving.add_generate_arguments, serving.run_generate, False),
    ("serve", "OpenAI-compatible API and a chat page", serving.add_serve_arguments, serving.run_serve, False),
    ("models", "registered model versions with their bits-per-byte; which is champion", no_options, run_models,
     False),
    ("finetune", "post-training: SFT, reward model, DPO, PPO or GRPO", finetune_arguments, run_finetune, False),
    ("summary", "print documents per stage, evaluation figures and the MLflow run", no_options, run_summary, False),
    ("flow", "run the whole pipeline as a Prefect flow (python -m flows.pipeline)", flow_options, run_flow, False),
    ("sources", "list the crawl sources, or validate source files", sources_options, run_sources, False),
    ("corpus", "corpus versions (git history of dvc.lock, corpus-vN tags): list or check out", corpus_options,
     run_corpus, False),
    ("status", "sources and their last crawl, corpus versions, the champion and its figures", no_options,
     run_status, False),
    ("compare", "two MLflow runs: params diff, metrics, corpus versions, loss curves (HTML)", compare_options,
     run_compare, False),
    ("reproduce", "train a model again from what its MLflow run records (commit, data, params, threads) and "
     "compare", reproduce.add_arguments, reproduce.run, False),
    ("sweep", "a grid of DVC experiments as a Prefect flow (python -m flows.sweep)", sweep_options, run_sweep,
     False),
]


if __name__ == "__main__":
    sys.exit(main())
