"""The end-of-run report: documents per stage, the evaluation figures and where to look next."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokenmill.errors import UserError
from pipeline.params import Params


def _read_json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def summarize(params: Params) -> str:
    paths = params.paths
    metrics = _read_json(Path(paths.metrics))
    if metrics is None:
        raise UserError(f"{paths.metrics}: no evaluation metrics yet; run `dvc repro` (or `make demo`) first")
    lines = ["", "tokenmill pipeline summary", ""]
    for stage, directory in (("crawl", paths.crawl), ("prepare", paths.corpus), ("tokenize", paths.tokens)):
        stats = _read_json(Path(directory) / "stats.json") or {}
        if "documents_in" in stats or "documents_out" in stats:
            lines.append(f"  {stage:<9} documents in {stats.get('documents_in', '-'):>7}   "
                         f"out {stats.get('documents_out', '-'):>7}")
    train = _read_json(Path(paths.model) / "stats.json") or {}
    if "steps" in train:
        lines.append(f"  train     {train['steps']} steps, {train.get('tokens_seen', 0):,} tokens, "
                     f"{train.get('parameters', 0):,} parameters, {train.get('tokens_per_s') or 0:,.0f} tokens/s")
    lines.append("")
    for key in ("val_loss", "unigram_val_loss", "perplexity", "bits_per_byte"):
        if key in metrics:
            lines.append(f"  {key:<17} {metrics[key]:.4f}")
    run = _read_json(Path(paths.model) / "run.json") or {}
    lines += [
        "",
        f"  MLflow run        {run.get('run_id', '?')}  (experiment {params.tracking.experiment})",
        "  MLflow UI         make ui   → http://127.0.0.1:5000",
        "  DVC metrics       dvc metrics show;  plots: dvc plots show",
        "",
    ]
    return "\n".join(lines)
