"""MLflow for fine-tuning: where a base model comes from, one run per fine-tuning, registered versions
with a promotion gate (the alias moves only when the held-out metric beats the current holder's)."""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from pathlib import Path

from tokenmill.locations import without_credentials
from tokenmill.config import flatten
from tokenmill.errors import UserError
from training import tracking as mlf
from training.config import TrackingConfig
from training.finetune.config import FinetuneConfig
from training.finetune.model_dir import BASE, MODEL, REWARD, TOKENIZER


def _model_dir_in(root: Path) -> Path | None:
    """The first directory under `root` (itself included) holding a tokenizer and model weights."""
    for candidate in [root, *sorted(p for p in root.rglob("*") if p.is_dir())]:
        if (candidate / TOKENIZER).is_file() and any((candidate / f).is_file() for f in (MODEL, BASE, REWARD)):
            return candidate
    return None


def resolve_base(base: str, config: FinetuneConfig, tracking: TrackingConfig) -> tuple[Path, dict]:
    """(local model directory, description) of `base`: a directory, an MLflow run id, 'champion'
    (that alias of the pre-trained model registered as `tracking.registered_model`) or NAME@ALIAS
    (e.g. tokenmill-sft@champion)."""
    path = Path(base)
    if path.is_dir():
        info = {"model": base, "path": path.as_posix()}
        if (path / "run.json").is_file():
            info["run_id"] = json.loads((path / "run.json").read_text(encoding="utf-8")).get("run_id")
        return path, info
    if not tracking.enabled:
        raise UserError(f"--base {base}: no such model directory (tracking is disabled, so run ids and "
                        f"'champion' cannot be looked up)")
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    client = mlf.client(tracking)
    if base == config.registry.alias or "@" in base:
        name, alias = (tracking.registered_model, base) if "@" not in base else base.split("@", 1)
        try:
            version = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            raise UserError(f"--base {base}: registered model '{name}' has no version with alias '{alias}' "
                            f"in {without_credentials(tracking.tracking_uri)}") from None
        info = {"model": base, "registered": name, "version": version.version, "run_id": version.run_id}
        uri, key = version.source, f"{name}-v{version.version}"
    else:
        try:
            run = client.get_run(base)
        except MlflowException:
            raise UserError(f"--base {base}: not a model directory, an MLflow run id in "
                            f"{without_credentials(tracking.tracking_uri)} "
                            f"or '{config.registry.alias}'") from None
        info = {"model": base, "run_id": run.info.run_id}
        uri, key = run.info.artifact_uri, run.info.run_id
    cache = Path(config.out) / ".bases" / key
    if _model_dir_in(cache) is None:
        cache.mkdir(parents=True, exist_ok=True)
        quiet = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
        os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # no bar redraws in stage logs
        try:
            download_artifacts(artifact_uri=uri, dst_path=str(cache),
                               tracking_uri=mlf.store_uri(tracking.tracking_uri))
        finally:
            if quiet is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = quiet
    found = _model_dir_in(cache)
    if found is None:
        raise UserError(f"--base {base}: its artifacts ({uri}) hold no tokenizer.json with model weights")
    return found, {**info, "path": found.as_posix()}


def start_run(tracking: TrackingConfig, stage: str, config: FinetuneConfig, base: dict, data: Path,
              data_sha256: str) -> str:
    """A new MLflow run naming the base model and the data (sha256, also as a dataset input)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag, Param

    experiment_id = mlf.ensure_experiment(tracking)
    client = mlf.client(tracking)
    tags = {"finetune.stage": stage, "base.model": str(base["model"]), "data.path": data.as_posix(),
            "data.sha256": data_sha256}
    tags.update({f"base.{k}": str(base[k]) for k in ("run_id", "registered", "version") if base.get(k)})
    if commit := mlf.git_commit():
        tags[mlf.GIT_COMMIT_TAG] = commit
    run = client.create_run(experiment_id, run_name=f"finetune-{stage}", tags=tags)
    run_id = run.info.run_id
    params = [Param(k, str(v)[:6000]) for k, v in flatten({"finetune": config}).items()]
    for start in range(0, len(params), 100):
        client.log_batch(run_id, params=params[start:start + 100])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = resolve_dataset_source(data.resolve().as_posix())
    dataset = MetaDataset(source, name=data.name, digest=data_sha256[:16])
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(),
                                                     [InputTag("mlflow.data.context", stage),
                                                      InputTag("sha256", data_sha256)])])
    return run_id


def log_history(tracking: TrackingConfig, run_id: str, stage: str, history: dict) -> None:
    """Per-step train figures as `<stage>/train_<k>` and held-out ones as `<stage>/val_<k>`."""
    from mlflow.entities import Metric

    metrics = [Metric(f"{stage}/{split}_{k}", float(v), 0, r["step"])
               for split in ("train", "val") for r in history[split] for k, v in r.items()
               if k != "step" and isinstance(v, (int, float)) and v == v]  # v == v: no NaN
    client = mlf.client(tracking)
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start:start + 1000])


def fail_run(tracking: TrackingConfig, run_id: str) -> None:
    mlf.client(tracking).set_terminated(run_id, "FAILED")


def finish_run(tracking: TrackingConfig, run_id: str, out: Path, summary: dict) -> None:
    client = mlf.client(tracking)
    client.log_artifacts(run_id, str(out), "model")
    client.set_terminated(run_id)


def register(tracking: TrackingConfig, config: FinetuneConfig, stage: str, run_id: str, value: float,
             data_sha256: str, eval_set: str, gate: tuple[str, bool], refusal: str | None = None) -> dict:
    """Register the run's model under the stage's name; move the alias only when `value` (the stage's
    held-out figure gate[0], higher better when gate[1]) beats the alias holder's on the same held-out
    set (`eval_set`), as the pre-training gate does, and the stage gave no `refusal` (a bound the run
    broke, e.g. its KL to the base). Logs the decision and both figures on the run."""
    from mlflow.exceptions import MlflowException

    client = mlf.client(tracking)
    name, alias = getattr(config.registry, stage), config.registry.alias
    metric, higher = gate
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name, description=f"tokenmill fine-tuning stage '{stage}'")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version(name, source, run_id=run_id, tags={
        "metric": metric, "value": repr(value), "eval_set": eval_set, "data.sha256": data_sha256})
    try:
        holder = client.get_model_version_by_alias(name, alias)
        holder_value = float(holder.tags["value"])
    except (MlflowException, KeyError, ValueError):
        holder, holder_value = None, None
    if refusal:
        promoted, reason = False, f"kept: {refusal}"
    elif not math.isfinite(value):
        promoted, reason = False, "kept: no held-out data"
    elif holder is None:
        promoted, reason = True, f"promoted: first version ({metric} {value:.4g})"
    elif holder_value is None or not math.isfinite(holder_value):
        promoted, reason = True, f"promoted: champion v{holder.version} has no {metric} ({metric} {value:.4g})"
    elif holder.tags.get("eval_set") != eval_set:
        promoted, reason = False, (f"kept v{holder.version}: not comparable (its held-out set "
                                   f"{holder.tags.get('eval_set')}, this one {eval_set})")
    else:
        promoted = value > holder_value if higher else value < holder_value
        reason = (f"{'promoted' if promoted else 'kept'}: {metric} {value:.4g} "
                  f"{'beats' if promoted else 'does not beat'} v{holder.version}'s {holder_value:.4g}")
    if promoted:
        client.set_registered_model_alias(name, alias, version.version)
    client.set_tag(run_id, "gate.decision", reason)
    if math.isfinite(value):
        client.log_metric(run_id, f"gate/{metric}", value)
    if holder_value is not None and math.isfinite(holder_value):
        client.log_metric(run_id, f"gate/champion_{metric}", holder_value)
    print(f"registry: {name} version {version.version}: {reason}", file=sys.stderr)
    return {"name": name, "version": int(version.version), "promoted": promoted, "reason": reason,
            "champion_value": holder_value}
