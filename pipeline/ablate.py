"""`tokenmill ablate`: data choices compared on the model they give, in one MLflow parent run.

    tokenmill ablate classifier prepare.steps=[normalize,language,quality],[normalize,language,quality,quality_model] \
        --set prepare.quality_model.model=models/quality --set model.preset=tiny --set train.max_steps=200

Each variant (one value per KEY, every combination; values split on commas outside brackets) prepares its
corpus from the same input, through `select` when a signals corpus of the shared params can stand in for a
fresh prepare (only thresholds of replayed filters change: dataprep/select.py), tokenizes it with one
tokenizer (trained on the first variant's corpus), trains the same model on the same number of tokens
(train.max_steps x batch x block) and is evaluated on one frozen evaluation set (made once from the
first variant's corpus). MLflow: a parent run named after the ablation, one child run per variant with its
settings and bits-per-byte overall and per language; on the parent, the comparison table (CSV and
Markdown) and chart. Outputs under paths.runs/ablate-NAME/<variant>/.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import re
from pathlib import Path
from typing import Any

from tokenmill.errors import UserError

REPLAYED_SECTIONS = ("prepare.quality.", "prepare.fineweb.", "prepare.language.min_score", "prepare.quality_model.threshold",
                     "prepare.quality_model.top_fraction")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the ablation's name (the MLflow parent run, the output directory)")
    p.add_argument("grid", nargs="+", metavar="KEY=V1,V2", help="a param and its values, e.g. prepare.quality.min_words=50,100")
    p.add_argument("--in", dest="inp", type=Path, help="documents to prepare (default: paths.crawl/documents)")


def split_values(text: str) -> list[str]:
    """'a,[b,c],d' → ['a', '[b,c]', 'd']: commas inside brackets belong to a YAML list."""
    values, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            values.append(current)
            current = ""
        else:
            current += ch
    return values + [current]


def variants(grid: list[str]) -> list[dict[str, str]]:
    axes = []
    for item in grid:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise UserError(f"ablate: '{item}' is not KEY=V1,V2")
        axes.append([(key, v.strip()) for v in split_values(values)])
    return [dict(combo) for combo in itertools.product(*axes)]


def slug(variant: dict[str, str]) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in variant.items()))[:120]


def run(args: argparse.Namespace, params: Any) -> dict:
    from pipeline.params import load_params

    grid = variants(args.grid)
    shared = list(args.overrides)
    root = Path(params.paths.runs) / f"ablate-{args.name}"
    inp = Path(args.inp) if args.inp else Path(params.paths.crawl) / "documents"
    results = []
    signals_corpus = None
    if all(k.startswith(REPLAYED_SECTIONS) for v in grid for k in v):
        signals_corpus = prepare_with_signals(load_params(args.params, shared), inp, root / "signals-corpus")
    for variant in grid:
        variant_params = load_params(args.params, shared + [f"{k}={v}" for k, v in variant.items()])
        results.append(run_variant(variant, variant_params, inp, root, signals_corpus))
    logged = log_ablation(params.tracking, args.name, results, root) if params.tracking.enabled else None
    (root / "ablation.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    return {"ablation": args.name, "variants": len(results), "parent_run": logged,
            **{f"{r['name']}_bpb": round(r["metrics"]["bits_per_byte"], 4) for r in results}}


def prepare_with_signals(params: Any, inp: Path, out: Path) -> Path:
    from dataprep.pipeline import run as prepare

    config = copy.deepcopy(params.prepare)
    config.keep_signals = True
    prepare(inp, out, config)
    return out


def run_variant(variant: dict[str, str], params: Any, inp: Path, root: Path, signals_corpus: Path | None) -> dict:
    """Prepare (or select), tokenize with the shared tokenizer, train, evaluate one variant."""
    from dataprep.pipeline import run as prepare
    from dataprep.select import select
    from training.evalset import make_evalset
    from training.evaluate import evaluate
    from training.tokenizer import tokenize
    from training.train import train

    out = root / slug(variant)
    out.mkdir(parents=True, exist_ok=True)
    corpus = out / "corpus"
    prepared = select(signals_corpus, corpus, params.prepare) if signals_corpus else prepare(inp, corpus, params.prepare)
    evalset = root / "evalset"
    if not (evalset / "meta.json").is_file():
        make_evalset(corpus, evalset, params.evalset)
    tokenizer = root / "tokenizer.json"
    tokenize(corpus, out / "tokens", params.tokenize, tokenizer=tokenizer if tokenizer.is_file() else None,
             eval_set=evalset)
    if not tokenizer.is_file():
        tokenizer.write_bytes((out / "tokens" / "tokenizer.json").read_bytes())
    tracking = copy.deepcopy(params.tracking)
    tracking.enabled = tracking.register = False  # the ablation logs one child run per variant itself
    train(out / "tokens", out / "model", params.train, params.model, tracking, checkpoints=out / "checkpoints")
    metrics = evaluate(out / "model", out / "tokens", out / "metrics.json", params.evaluate, tracking)
    return {"name": slug(variant), "variant": variant, "documents": prepared["documents_out"],
            "selected": signals_corpus is not None, "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))}}


def comparison_table(results: list[dict]) -> tuple[list[str], list[list]]:
    langs = sorted({k.split("=", 1)[1] for r in results for k in r["metrics"] if k.startswith("bits_per_byte/lang=")})
    header = ["variant", "documents", "bits_per_byte", *[f"bpb {lang}" for lang in langs]]
    rows = [[r["name"], r["documents"], round(r["metrics"]["bits_per_byte"], 4),
             *[round(r["metrics"].get(f"bits_per_byte/lang={lang}", float("nan")), 4) for lang in langs]] for r in results]
    return header, rows


def log_ablation(tracking: Any, name: str, results: list[dict], root: Path) -> str:
    """The parent run (table and chart) and one child run per variant (settings and figures)."""
    from training.tracking import client, start_run

    parent = start_run(tracking, f"ablate {name}", {"tokenmill.ablation": name})
    mlflow = client(tracking)
    for result in results:
        child = start_run(tracking, f"{name}: {result['name']}", {"mlflow.parentRunId": parent, "tokenmill.ablation": name})
        for key, value in result["variant"].items():
            mlflow.log_param(child, key, value)
        for key, value in result["metrics"].items():
            mlflow.log_metric(child, key.replace("=", "_"), float(value))
        mlflow.log_metric(child, "documents", result["documents"])
        mlflow.set_terminated(child)
    header, rows = comparison_table(results)
    csv = "\n".join(",".join(map(str, line)) for line in [header, *rows]) + "\n"
    markdown = "\n".join(["| " + " | ".join(map(str, line)) + " |" for line in [header, ["---"] * len(header), *rows]]) + "\n"
    (root / "comparison.csv").write_text(csv, encoding="utf-8")
    mlflow.log_text(parent, csv, "comparison.csv")
    mlflow.log_text(parent, markdown, "comparison.md")
    mlflow.log_figure(parent, comparison_chart(header, rows), "comparison.png")
    mlflow.set_terminated(parent)
    return parent


def comparison_chart(header: list[str], rows: list[list]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    columns = header[2:]
    figure, ax = plt.subplots(figsize=(max(4, 1.5 * len(columns) * len(rows) / 2), 3))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        ax.bar(np.arange(len(columns)) + i * width, row[2:], width, label=row[0])
    ax.set_xticks(np.arange(len(columns)) + 0.4 - width / 2, columns)
    ax.set(ylabel="bits per byte (lower is better)")
    ax.legend(fontsize="small")
    figure.tight_layout()
    return figure
