"""MLflow bookkeeping: the experiment, the corpus version a run saw, git commit, artifacts.

Only rank 0 calls these. The tracking URI is always explicit (MLflow 3 needs it); experiments are
created with their artifact root under mlflow/ because MLflow 3 refuses the old ./mlruns file store.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import warnings
from pathlib import Path

import yaml
from lightning.pytorch.loggers import MLFlowLogger

from tokenmill.errors import UserError
from training.config import TrackingConfig

GIT_COMMIT_TAG = "mlflow.source.git.commit"


def client(tracking: TrackingConfig):
    from mlflow import MlflowClient

    _make_sqlite_dir(tracking.tracking_uri)
    return MlflowClient(tracking_uri=tracking.tracking_uri)


def _make_sqlite_dir(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def ensure_experiment(tracking: TrackingConfig) -> str:
    """The experiment's id; created with an explicit artifact location, restored if deleted."""
    mlflow_client = client(tracking)
    experiment = mlflow_client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        location = Path(tracking.artifact_location).resolve().as_uri()
        return mlflow_client.create_experiment(tracking.experiment, artifact_location=location)
    if experiment.lifecycle_stage == "deleted":
        mlflow_client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id


def existing_run(tracking: TrackingConfig, run_id: str | None) -> str | None:
    """`run_id` if the store still has that run (a resumed training continues its run), else None."""
    if not run_id:
        return None
    try:
        return client(tracking).get_run(run_id).info.run_id
    except Exception:  # MlflowException: the store was reset or the run deleted
        return None


def make_logger(tracking: TrackingConfig, run_id: str | None) -> MLFlowLogger:
    ensure_experiment(tracking)
    tags = {GIT_COMMIT_TAG: commit} if (commit := git_commit()) else None
    return MLFlowLogger(experiment_name=tracking.experiment, tracking_uri=tracking.tracking_uri,
                        run_id=run_id, tags=tags)


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def corpus_hash(corpus: Path, lock: Path = Path("dvc.lock")) -> tuple[str, str]:
    """(md5, where it is recorded): DVC's directory hash of the corpus as it is on disk, and
    "dvc.lock" when dvc.lock records that same version, else "computed" (not yet committed to DVC).

    Always computed from the files, because a dvc.lock left by an earlier `dvc repro` may name
    another version than the one a later `tokenmill prepare` wrote."""
    corpus = Path(corpus)
    if not corpus.exists():
        raise UserError(f"{corpus}: corpus not found (named in tokens/meta.json)")
    md5 = dvc_md5(corpus)
    return md5, ("dvc.lock" if md5 in _locked_md5s(corpus, lock) else "computed")


def _locked_md5s(corpus: Path, lock: Path) -> set[str]:
    if not lock.is_file():
        return set()
    stages = (yaml.safe_load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}) or {}
    return {entry["md5"] for stage in stages.values() for entry in stage.get("outs", []) or []
            if entry.get("md5") and _same_path(lock.parent / entry.get("path", ""), corpus)}


def _same_path(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def dvc_md5(path: Path) -> str:
    """DVC 3's hash of a file (md5 of its bytes) or a directory: md5 of the JSON list of
    {"md5", "relpath"} of its files sorted by relpath, suffixed ".dir" (dvc_data Tree.digest)."""
    path = Path(path)
    if path.is_file():
        return _file_md5(path)
    entries = sorted(
        ({"md5": _file_md5(f), "relpath": f.relative_to(path).as_posix()} for f in path.rglob("*") if f.is_file()),
        key=lambda e: e["relpath"],
    )
    return hashlib.md5(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest() + ".dir"


def _file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def log_corpus_input(tracking: TrackingConfig, run_id: str, corpus: Path) -> dict:
    """Name the corpus version the run trained on: an MLflow dataset input whose digest is the DVC hash."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    md5, source = corpus_hash(corpus)
    with warnings.catch_warnings():  # "can be interpreted in multiple ways": both are the local source
        warnings.simplefilter("ignore")
        dataset_source = resolve_dataset_source(Path(corpus).as_posix())
    dataset = MetaDataset(dataset_source, name=Path(corpus).name, digest=md5)
    tags = [InputTag("mlflow.data.context", "training"), InputTag("dvc_md5", md5), InputTag("hash_source", source)]
    mlflow_client = client(tracking)
    mlflow_client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags)])
    mlflow_client.set_tag(run_id, "corpus.dvc_md5", md5)
    mlflow_client.set_tag(run_id, "corpus.hash_source", source)
    return {"path": Path(corpus).as_posix(), "md5": md5, "hash_source": source}


def log_artifacts(tracking: TrackingConfig, run_id: str, out: Path, tokens: Path, corpus: Path | None) -> None:
    """The trained model, tokenizer, history and plots; the tokens' meta/stats (fertility); the
    corpus's stats.json and plots if present."""
    mlflow_client = client(tracking)
    for name in ("model.pt", "tokenizer.json", "config.json"):
        if (out / name).is_file():
            mlflow_client.log_artifact(run_id, str(out / name))
    for name in ("meta.json", "stats.json"):
        if (tokens / name).is_file():
            mlflow_client.log_artifact(run_id, str(tokens / name), "tokens")
    mlflow_client.log_artifacts(run_id, str(out / "history"), "history")
    mlflow_client.log_artifacts(run_id, str(out / "plots"), "plots")
    if corpus is not None:
        if (corpus / "stats.json").is_file():
            mlflow_client.log_artifact(run_id, str(corpus / "stats.json"), "corpus")
        if (corpus / "plots").is_dir():
            mlflow_client.log_artifacts(run_id, str(corpus / "plots"), "corpus/plots")
