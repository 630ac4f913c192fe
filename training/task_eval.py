"""`tokenmill evaluate --tasks`: lm-evaluation-harness tasks on a model SPEC (anything `tokenmill export`
reads, fine-tuned directories included). Apart from training/harness.py (the adapter) because reading
any SPEC reaches fine-tuning's model directories, which the pre-training evaluate stage must not
depend on (its DVC code dependencies would follow)."""
from __future__ import annotations

import tempfile
from pathlib import Path

from tokenmill.errors import UserError
from training.export import load_exportable
from training.harness import (LOCAL_GROUP, TokenmillLM, log_task_metrics, offline_environment, resolve_tasks,
                              run_harness, task_metrics, write_metrics)
from training.model_spec import pick_device


def evaluate_tasks(model_spec: str | Path, names: list[str], out: Path, tracking, evalset: Path | None = None,
                   include_path: Path | None = None, limit: int | float | None = None, batch_size: int = 16,
                   device: str = "auto") -> dict:
    """Run harness tasks on a tokenmill model (anything `tokenmill evaluate --model` takes): their figures
    are merged into `out` (metrics.json, keys task/<task>/<metric>), the harness's description goes to
    harness.json beside it, and both to the model's MLflow run."""
    import lm_eval

    names, local_dir, digest = resolve_tasks(names, evalset)
    if all(n.startswith(LOCAL_GROUP) for n in names):
        offline_environment()  # local tasks never need the Hub
    with tempfile.TemporaryDirectory(prefix="tokenmill-harness-") as workdir:
        model, tokenizer, run_id = load_exportable(str(model_spec), tracking, Path(workdir))
    if not getattr(model, "causal", True):
        raise UserError(f"{model_spec}: a masked-LM model has no left-to-right log-likelihood to run harness tasks on")
    lm = TokenmillLM(model, tokenizer, batch_size, pick_device(device))
    paths = [p for p in (local_dir, include_path) if p is not None]
    results = run_harness(lm, names, paths, limit)
    metrics = task_metrics(results)
    description = {"tasks": names, "limit": limit, "lm_eval": lm_eval.__version__, "model": str(model_spec),
                   "eval_set": digest, "versions": results.get("versions", {}),
                   "n_samples": results.get("n-samples", {}), "include_path": [p.as_posix() for p in paths]}
    write_metrics(Path(out), metrics, description)
    logged = log_task_metrics(tracking, run_id, metrics, description, Path(out))
    return {"tasks": names, **metrics, "run_id": run_id, "logged": logged}
