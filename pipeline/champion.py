"""The champion: the version of `tracking.registered_model` holding the registry alias `champion`.

There is one champion. The promotion gate of `tokenmill evaluate` (training/registry.py) moves the alias
when a new version's bits-per-byte beats the holder's on the same evaluation set; `tokenmill models` and
`tokenmill status` show it, and its move starts the fine-tuning deployment (flows/champion.py).

`evaluate_on_corpus` measures the champion on a new corpus version, encoded with its own tokenizer.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

from tokenmill.errors import UserError


def champion(tracking) -> dict[str, Any] | None:
    """{"version", "run_id", "metrics", "params", "tags"} of the champion and its MLflow run, or None."""
    from training.registry import champion_version
    from training.tracking import client

    holder = champion_version(tracking)
    if holder is None:
        return None
    run = client(tracking).get_run(holder.run_id)
    return {"version": int(holder.version), "run_id": holder.run_id, "metrics": dict(run.data.metrics),
            "params": dict(run.data.params), "tags": dict(run.data.tags)}


def corpus_metric(corpus_version: str, key: str) -> str:
    """MLflow name of a champion's figure on a corpus version: eval/<version>/<key> (':' for '=')."""
    return f"eval/{corpus_version}/{key.replace('=', ':')}"


def evaluate_on_corpus(corpus_dir: Path, corpus_version: str, tokenize_config, eval_config,
                       tracking, evalset: Path | None = None) -> dict | None:
    """Evaluate the registry's champion on `corpus_dir` (corpus `corpus_version`); None without a champion.

    The corpus is encoded with the champion's own tokenizer.json (nothing is trained) into a temporary
    directory, its validation documents being the frozen evaluation set `evalset` when there is one (as the
    evaluate stage's are: one evaluation set, one digest, one figure per model, whichever way it runs); the figures go on the champion's run as metrics eval/<corpus_version>/<key>, with the
    evaluation files as artifacts under eval/<corpus_version>/ and tags eval.<corpus_version>.*. The
    run's own eval/* figures (what the registry gate compared) are left as they were."""
    from mlflow.entities import Metric, RunTag

    from training.evaluate import evaluate
    from training.registry import champion_version
    from training.tokenizer import tokenize
    from training.tracking import client

    version = champion_version(tracking)
    if version is None:
        return None
    mlflow_client = client(tracking)
    model_uri = f"models:/{tracking.registered_model}/{version.version}"  # pinned: the alias may move meanwhile
    with tempfile.TemporaryDirectory(prefix="tokenmill-champion-") as tmp:
        work = Path(tmp)
        try:  # logged on the run by the train stage (training/tracking.py log_artifacts)
            tokenizer_file = Path(mlflow_client.download_artifacts(version.run_id, "tokenizer.json", str(work)))
        except Exception:  # MlflowException: no such artifact
            raise UserError(f"{model_uri}: its run {version.run_id} has no tokenizer.json artifact") from None
        frozen = Path(evalset) if evalset and (Path(evalset) / "meta.json").is_file() else None
        tokenize(Path(corpus_dir), work / "tokens", tokenize_config, tokenizer=tokenizer_file, eval_set=frozen)
        out = work / "eval" / "metrics.json"
        out.parent.mkdir()
        # Not logged by evaluate: it would overwrite the run's eval/* figures and register the model again.
        result = evaluate(model_uri, work / "tokens", out, eval_config, dataclasses.replace(tracking, enabled=False))
        metrics = json.loads(out.read_text(encoding="utf-8"))
        now = int(time.time() * 1000)
        mlflow_client.log_batch(
            version.run_id,
            metrics=[Metric(corpus_metric(corpus_version, k), float(v), now, 0) for k, v in metrics.items()
                     if isinstance(v, (int, float)) and math.isfinite(v)],
            tags=[RunTag(f"eval.{corpus_version}.set", result["eval_set"]),
                  RunTag(f"eval.{corpus_version}.model_version", str(version.version))])
        for path in out.parent.iterdir():
            mlflow_client.log_artifact(version.run_id, str(path), f"eval/{corpus_version}")
    return {"model": tracking.registered_model, "version": int(version.version), "run_id": version.run_id,
            "corpus_version": corpus_version, "eval_set": result["eval_set"],
            "bits_per_byte": result.get("bits_per_byte", result.get("masked_bits_per_byte")), "metrics": metrics}

