"""`tokenmill`: one subcommand per stage; every option defaults from params.yaml."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from tokenmill.errors import TransientError, UserError

STAGE_GROUPS_HELP = {
    "filter": "language identification and Gopher quality/repetition filters",
    "dedup": "exact and MinHash near-duplicate removal",
    "scrub": "PII scrubbing (e-mail, phone, IP) into typed placeholders",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        from tokenmill.params import load_params

        params = load_params(args.params, args.overrides)
        started = time.perf_counter()
        result = args.handler(args, params)
        print(f"tokenmill {args.command}: done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        if result is not None:
            print(json.dumps(result, indent=2, ensure_ascii=False, default=str) if args.json else one_line(result))
        return 0
    except UserError as exc:
        print(f"tokenmill {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except TransientError as exc:  # e.g. training stopped by SIGTERM after saving a checkpoint: retryable
        print(f"tokenmill {args.command}: {exc}", file=sys.stderr)
        return 75  # EX_TEMPFAIL
    except KeyboardInterrupt:
        print(f"tokenmill {args.command}: interrupted", file=sys.stderr)
        return 130


def one_line(result: dict) -> str:
    """The scalar figures of a stage's result on one line; the whole of it is in its stats.json."""
    parts = [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
             for key, value in result.items() if isinstance(value, (int, float, str)) or value is None]
    if result.get("removed"):
        parts.append("removed=" + ",".join(f"{k}:{v}" for k, v in result["removed"].items()))
    return " ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokenmill",
        description="Web text to a trained, evaluated language model. Options default from params.yaml.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, handler: Callable, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        p.add_argument("--params", type=Path, default=None, help="params file (default: ./params.yaml)")
        p.add_argument("--json", action="store_true", help="print the full result (stats) as JSON")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a param, e.g. --set train.max_steps=100 (repeatable)")
        return p

    p = command("crawl", run_crawl, "crawl sources into WARC files and document shards")
    p.add_argument("sources", nargs="*", metavar="SOURCE",
                   help="source name under sources/ or path to a source YAML (default: crawl.sources)")
    p.add_argument("--out", type=Path, help="output directory (default: paths.crawl)")

    p = command("prepare", run_prepare, "run every configured dataprep step (prepare.steps) in order")
    _in_out(p, "paths.crawl/documents", "paths.corpus")
    p.add_argument("--steps", help="comma-separated steps to run instead of prepare.steps")
    for name, text in STAGE_GROUPS_HELP.items():
        _in_out(command(name, run_step_group, text), "paths.crawl/documents", f"{name} output")

    p = command("tokenize", run_tokenize, "train the BPE tokenizer and write train/val token memmaps")
    _in_out(p, "paths.corpus", "paths.tokens")

    p = command("train", run_train, "train the GPT (Lightning; devices/strategy/precision from params)")
    p.add_argument("--tokens", type=Path, help="token directory (default: paths.tokens)")
    p.add_argument("--out", type=Path, help="model directory (default: paths.model)")
    p.add_argument("--checkpoints", type=Path, help="checkpoint directory (default: paths.checkpoints)")

    p = command("evaluate", run_evaluate, "validation loss, perplexity, bits-per-byte and samples")
    p.add_argument("--model", help="model directory, .ckpt checkpoint, MLflow run id, runs:/ID or "
                                    "models:/NAME@ALIAS (default: paths.model)")
    p.add_argument("--tokens", type=Path, help="token directory (default: paths.tokens)")
    p.add_argument("--out", type=Path, help="metrics file (default: paths.metrics)")

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

    p = command("flow", run_flow, "run the whole pipeline as a Prefect flow")
    p.add_argument("name", choices=["pipeline"], help="flow to run")
    return parser


def _in_out(p: argparse.ArgumentParser, default_in: str, default_out: str) -> None:
    p.add_argument("--in", dest="inp", type=Path, help=f"input file or directory of shards (default: {default_in})")
    p.add_argument("--out", type=Path, help=f"output directory (default: {default_out})")


def run_crawl(args, params):
    from crawler.config import load_source
    from crawler.run import crawl

    names = args.sources or params.crawl.sources
    sources = [load_source(name, Path(params.paths.sources)) for name in names]
    return crawl(sources, args.out or Path(params.paths.crawl), params.crawl)


def run_prepare(args, params):
    steps = [s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None
    return _run_dataprep(args, params, steps)


def run_step_group(args, params):
    from dataprep.pipeline import STEP_GROUPS

    if args.out is None:
        raise UserError("--out is required")
    return _run_dataprep(args, params, STEP_GROUPS[args.command])


def _run_dataprep(args, params, steps):
    from dataprep.pipeline import run

    inp = args.inp or Path(params.paths.crawl) / "documents"
    return run(inp, args.out or Path(params.paths.corpus), params.prepare, steps)


def run_tokenize(args, params):
    from training.tokenizer import tokenize

    return tokenize(args.inp or Path(params.paths.corpus), args.out or Path(params.paths.tokens), params.tokenize)


def run_train(args, params):
    from training.train import train

    return train(
        args.tokens or Path(params.paths.tokens),
        args.out or Path(params.paths.model),
        params.train,
        params.model,
        params.tracking,
        checkpoints=args.checkpoints or Path(params.paths.checkpoints),
    )


def run_evaluate(args, params):
    from training.evaluate import evaluate

    return evaluate(
        args.model or Path(params.paths.model),
        args.tokens or Path(params.paths.tokens),
        args.out or Path(params.paths.metrics),
        params.evaluate,
        params.tracking,
    )


def run_models(args, params):
    from training.registry import format_models, list_models

    rows = list_models(params.tracking)
    if args.json:
        return {"model": params.tracking.registered_model, "versions": rows}
    print(format_models(params.tracking.registered_model, rows))


def run_finetune(args, params):
    from training.finetune.run import finetune

    return finetune(args.stage, args.data, args.base, args.out, params.finetune, params.tracking,
                    merge=args.merge, reward_model=args.reward_model)


def run_summary(args, params):
    from tokenmill.summary import summarize

    print(summarize(params))


def run_flow(args, params):
    from flows.pipeline import pipeline

    return pipeline(params_path=str(args.params or "params.yaml"), overrides=list(args.overrides))


if __name__ == "__main__":
    sys.exit(main())
