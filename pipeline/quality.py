"""`tokenmill quality train`: the quality classifier (dataprep/quality.py), its figures logged to MLflow.

    tokenmill quality train --positive data/corpus --negative data/boilerplate.jsonl --out models/quality
    tokenmill quality train --decisions data/corpus --out models/quality --lang en,fa,pl
    tokenmill quality train --labelled labels.jsonl --out models/quality

The dataprep layer trains and measures; this layer opens the MLflow run (training/tracking.py) and logs
the held-out precision, recall and ROC-AUC per language, the score histogram (a chart) and the model.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from tokenmill.errors import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["train"], help="train: fit the classifier and measure it on held-out examples")
    p.add_argument("--positive", nargs="+", default=[], metavar="PATH", help="documents to keep (files or shard directories)")
    p.add_argument("--negative", nargs="+", default=[], metavar="PATH", help="documents to drop")
    p.add_argument("--labelled", nargs="+", default=[], metavar="JSONL", help="{text, label} lines (label 1/0)")
    p.add_argument("--decisions", nargs="+", default=[], metavar="CORPUS",
                   help="prepare outputs: kept documents as positives, removed/ ones as negatives")
    p.add_argument("--out", type=Path, required=True, help="model directory (a DVC output)")
    p.add_argument("--lang", help="comma-separated languages: one model each (default: one multilingual model)")
    p.add_argument("--holdout", type=float, help="share held out for the figures (default 0.2)")


def run(args: argparse.Namespace, params: Any) -> dict:
    from dataprep.quality import QualityTrainConfig, decisions_as_examples, documents_as_examples, labelled_examples, train

    if not (args.positive or args.negative or args.labelled or args.decisions):
        raise UserError("no examples: give --positive and --negative, --labelled or --decisions")
    examples = itertools.chain(
        documents_as_examples(args.positive, True), documents_as_examples(args.negative, False),
        *(labelled_examples(path) for path in args.labelled), *(decisions_as_examples(c) for c in args.decisions))
    config = QualityTrainConfig(**({"holdout": args.holdout} if args.holdout is not None else {}))
    languages = [lang.strip() for lang in args.lang.split(",") if lang.strip()] if args.lang else None
    log = (lambda stats, directory: log_to_mlflow(params.tracking, stats, directory)) if params.tracking.enabled else None
    stats = train(examples, args.out, config, languages, log=log)
    return {"out": str(args.out), **flat_figures(stats)}


def flat_figures(stats: dict) -> dict[str, Any]:
    """{'en_precision': ..., 'en_roc_auc': ...} for every language model (the one-line result, MLflow metrics)."""
    figures = {}
    for lang, result in stats["languages"].items():
        name = "all" if lang == "*" else lang
        for key in ("precision", "recall", "roc_auc"):
            if result[key] is not None:
                figures[f"{name}_{key}"] = round(result[key], 4)
        figures[f"{name}_heldout"] = sum(result["heldout"].values())
    return figures


def log_to_mlflow(tracking: Any, stats: dict, directory: Path) -> str:
    """One run 'quality-classifier': figures as metrics, histogram chart, stats and model as artifacts."""
    from training.tracking import client, start_run

    run_id = start_run(tracking, "quality-classifier", {"tokenmill.stage": "quality"})
    mlflow = client(tracking)
    for key, value in flat_figures(stats).items():
        mlflow.log_metric(run_id, key, float(value))
    for key, value in stats["config"].items():
        mlflow.log_param(run_id, key, value)
    mlflow.log_figure(run_id, histogram_figure(stats), "score_histogram.png")
    mlflow.log_text(run_id, json.dumps(stats, indent=2, default=str), "stats.json")
    mlflow.log_artifacts(run_id, str(directory), "model")
    mlflow.set_terminated(run_id)
    return run_id


def histogram_figure(stats: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {lang: r for lang, r in stats["languages"].items() if r["histogram"]}
    figure, axes = plt.subplots(1, max(len(models), 1), figsize=(4 * max(len(models), 1), 3), squeeze=False)
    for ax, (lang, result) in zip(axes[0], models.items()):
        edges, histogram = result["histogram"]["edges"], result["histogram"]
        ax.stairs(histogram["positive"], edges, label="positive", fill=True, alpha=0.5)
        ax.stairs(histogram["negative"], edges, label="negative", fill=True, alpha=0.5)
        ax.set(title=f"{lang}: AUC {result['roc_auc']:.3f}", xlabel="quality_score", ylabel="held-out documents")
        ax.legend()
    figure.tight_layout()
    return figure


def add_select_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--in", dest="inp", type=Path, required=True, help="a prepare output made with prepare.keep_signals")
    p.add_argument("--out", type=Path, required=True, help="output directory (a prepare output)")
    p.add_argument("--force", action="store_true", help="replace whatever is at --out")


def run_select(args: argparse.Namespace, params: Any) -> dict:
    """`tokenmill select`: the corpus decided again from its signals under params.prepare (with --set)."""
    from dataprep.select import select
    from tokenmill.stage import check_replaceable

    check_replaceable(args.out, "prepare")
    return select(args.inp, args.out, params.prepare)
