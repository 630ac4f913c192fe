"""The champion: the MLflow run with the best evaluation so far, named by a tag on the experiment.

One tag (`tokenmill.champion`) on the experiment, not a tag per run, so there is always at most
one champion and crowning a new one is a single write. Lower bits-per-byte is better: unlike
validation loss it does not depend on the tokenizer, so runs on different corpora compare.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

CHAMPION_TAG = "tokenmill.champion"
METRIC = "eval/bits_per_byte"


def absolute_uri(uri: str) -> str:
    """A relative SQLite URI made absolute: MLflow keeps one store per URI string for the process,
    so a relative one would keep pointing at the first working directory's database."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).resolve())
    return uri


def client(tracking):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=absolute_uri(tracking.tracking_uri))


def champion(tracking) -> dict[str, Any] | None:
    """{"run_id", "metrics", "params", "tags"} of the champion run, or None."""
    mlflow_client = client(tracking)
    experiment = mlflow_client.get_experiment_by_name(tracking.experiment)
    run_id = experiment.tags.get(CHAMPION_TAG) if experiment else None
    if not run_id:
        return None
    run = mlflow_client.get_run(run_id)
    return {"run_id": run_id, "metrics": dict(run.data.metrics), "params": dict(run.data.params),
            "tags": dict(run.data.tags)}


def crown_if_better(tracking, run_id: str) -> bool:
    """Make `run_id` the champion when it beats the current one on METRIC (or there is none)."""
    mlflow_client = client(tracking)
    score = mlflow_client.get_run(run_id).data.metrics.get(METRIC, math.inf)
    current = champion(tracking)
    if current and current["run_id"] != run_id and current["metrics"].get(METRIC, math.inf) <= score:
        return False
    experiment = mlflow_client.get_experiment_by_name(tracking.experiment)
    mlflow_client.set_experiment_tag(experiment.experiment_id, CHAMPION_TAG, run_id)
    return True
