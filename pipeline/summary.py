"""The end-of-run summary: one run's documents per stage, evaluation figures and where to look next.

A run is the set of paths its params name: the versioned outputs (params.yaml), or an ad-hoc run's
under runs/<name>/ (`tokenmill summary --set ...` with the same overrides). Figures come only from
that set, so two runs are never mixed; a model trained on other tokens than the run's is said so.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenmill.errors import UserError

if TYPE_CHECKING:
    from pipeline.params import Params

CHECKOUT_FILES = ("dvc.yaml", "params.yaml")  # what the project directory has; the paths are relative to it
FUNNEL = (("crawl", "crawl"), ("prepare", "corpus"), ("tokenize", "tokens"))  # (stage, paths field)


def read_json(path: Path) -> Any:
    """A JSON file's content, None when absent; a damaged one is the user's to fix (one line)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def run_label(params: Params) -> str:
    return f"ad-hoc run '{params.run}' (under {params.paths.runs}/{params.run}/)" if params.run \
        else "versioned run (params.yaml, dvc.lock)"


def summarize(params: Params) -> str:
    paths = params.paths
    metrics = read_json(Path(paths.metrics))
    if metrics is None:
        if not any(Path(name).is_file() for name in CHECKOUT_FILES):
            raise UserError(f"not a tokenmill checkout: no {' or '.join(CHECKOUT_FILES)} in {Path.cwd()}; "
                            "run `tokenmill summary` in the project directory")
        raise UserError(f"{paths.metrics}: no evaluation metrics yet; run `dvc repro` (or `make demo`) first")
    lines = ["", f"tokenmill summary: {run_label(params)}", ""]
    for stage, field in FUNNEL:
        stats = read_json(Path(getattr(paths, field)) / "stats.json") or {}
        if "documents_in" in stats or "documents_out" in stats:
            lines.append(f"  {stage:<9} documents in {stats.get('documents_in', '-'):>7}   "
                         f"out {stats.get('documents_out', '-'):>7}   ({getattr(paths, field)})")
    model = Path(paths.model)
    train = read_json(model / "stats.json") or {}
    if "steps" in train:
        lines.append(f"  train     {train['steps']} steps, {train.get('tokens_seen', 0):,} tokens, "
                     f"{train.get('parameters', 0):,} parameters, {train.get('tokens_per_s') or 0:,.0f} tokens/s"
                     f"   ({paths.model})")
    trained_on = (read_json(model / "config.json") or {}).get("tokens")
    if trained_on and Path(trained_on).resolve() != Path(paths.tokens).resolve():
        lines.append(f"  note: {paths.model} was trained on {trained_on}, not on {paths.tokens}")
    lines.append("")
    for key in ("val_loss", "unigram_val_loss", "perplexity", "bits_per_byte"):
        if isinstance(metrics.get(key), (int, float)):
            lines.append(f"  {key:<17} {metrics[key]:.4f}")
    lines += _harness_and_export(params)
    run = read_json(model / "run.json") or {}
    report = Path(paths.report)
    lines += [
        "",
        f"  MLflow run        {run.get('run_id', '?')}  (experiment {params.tracking.experiment})",
        f"  report card       {report if report.is_file() else 'tokenmill report  (writes ' + str(report) + ')'}",
        "",
        "  Next, in this shell (the commands live in .venv):",
        "    source .venv/bin/activate",
        "    make ui                  MLflow UI on http://127.0.0.1:5000",
        "    dvc metrics show         metrics.json and tasks.json;  dvc plots show: the loss curves",
        f"    tokenmill generate --model {paths.model} --prompt \"The history of the city\"",
        "",
    ]
    return "\n".join(lines)


def _harness_and_export(params: Params) -> list[str]:
    """The harness tasks' accuracies (the tasks stage) and where the transformers export is."""
    tasks = read_json(Path(params.paths.tasks)) or {}
    lines = [f"  {key[len('task/'):]:<31} {value:.4f}" for key, value in sorted(tasks.items())
             if key.startswith("task/") and key.endswith("/acc") and isinstance(value, (int, float))]
    if lines:
        lines.insert(0, f"  harness tasks (lm-evaluation-harness, {params.paths.tasks}):")
    exported = Path(params.paths.export)
    if (exported / "config.json").is_file():
        lines.append(f"  transformers      {exported}  (AutoModelForCausalLM.from_pretrained({str(exported)!r}))")
    return [""] + lines if lines else []
