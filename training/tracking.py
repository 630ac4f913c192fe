"""MLflow bookkeeping: the experiment, run names and tags, the corpus version a run saw, artifacts.

Only rank 0 calls these. The tracking URI is always explicit (MLflow 3 needs it); experiments are
created with their artifact root under mlflow/ because MLflow 3 refuses the old ./mlruns file store.

The store stays inside the checkout. MLflow stores every artifact location as an absolute path, so
a moved or copied checkout would keep writing into the old tree; `ensure_experiment` notices that
the experiment's stored location is not `tracking.artifact_location` resolved here and rewrites the
stored locations of that experiment (experiment, runs, logged models, model versions) to this tree
(sqlite stores only: a shared server's locations are the server's business).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import warnings
from pathlib import Path

import yaml

from tokenmill.errors import UserError
from training.config import TrackingConfig

GIT_COMMIT_TAG = "mlflow.source.git.commit"
# MLflow 3's UI opens an experiment in the view its kind names (mlflow/server/js: ExperimentKind);
# without the tag it guesses, and an experiment with no traces yet opens on the GenAI traces page.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"
# Prefect exports the flow run id to the processes of a flow run (prefect.runtime reads the same);
# the pipeline flow passes it to the `tokenmill train` process it starts.
PREFECT_FLOW_RUN_ENV = "PREFECT__FLOW_RUN_ID"
PREFECT_UI_URL_ENV = "PREFECT_UI_URL"
# Columns of MLflow's SQL schema that hold artifact locations (rewritten when the checkout moves).
_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "storage_location"),
                     ("model_versions", "source"))


def client(tracking: TrackingConfig, uri: str | None = None):
    """The one way tokenmill opens MLflow: tracking.tracking_uri (or `uri`, e.g. the one a run recorded),
    a relative SQLite path made absolute (see store_uri)."""
    from mlflow import MlflowClient

    uri = uri or tracking.tracking_uri
    _make_sqlite_dir(uri)
    return MlflowClient(tracking_uri=store_uri(uri))


def store_uri(uri: str) -> str:
    """`uri` with a relative SQLite path made absolute against the current directory, now.

    MLflow caches one store per URI string for the life of the process: a relative URI would keep
    pointing at the file of whatever directory the process was in when it first opened it."""
    path = _sqlite_path(uri)
    return f"sqlite:///{path.resolve()}" if path is not None and not path.is_absolute() else uri


def _make_sqlite_dir(uri: str) -> None:
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)


def artifact_root(tracking: TrackingConfig) -> str:
    """The experiment's artifact location in this checkout, as a file URI."""
    return Path(tracking.artifact_location).resolve().as_uri()


def ensure_experiment(tracking: TrackingConfig) -> str:
    """The experiment's id: created with its artifact location in this checkout and opening as model
    training; restored if deleted; its stored locations moved here if the checkout moved."""
    mlflow_client = client(tracking)
    experiment = mlflow_client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        return mlflow_client.create_experiment(tracking.experiment, artifact_location=artifact_root(tracking),
                                               tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if experiment.lifecycle_stage == "deleted":
        mlflow_client.restore_experiment(experiment.experiment_id)
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    here = artifact_root(tracking)
    if experiment.artifact_location != here and _sqlite_path(tracking.tracking_uri):
        relocate(tracking, experiment.artifact_location, here)
    return experiment.experiment_id


def _sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def relocate(tracking: TrackingConfig, old: str, new: str) -> int:
    """Rewrite every stored artifact location under `old` to the same place under `new` (a moved
    or copied checkout: its artifacts moved with it). Returns the number of rows changed."""
    database = _sqlite_path(tracking.tracking_uri)
    changed = 0
    with sqlite3.connect(database, timeout=60) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, column in _LOCATION_COLUMNS:
            if table not in tables:
                continue
            changed += connection.execute(
                f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                (new, len(old) + 1, old, len(old) + 1, old + "/")).rowcount
    print(f"MLflow experiment '{tracking.experiment}': artifact location moved from {old} to {new} "
          f"(the checkout moved; {changed} stored locations updated)", file=sys.stderr)
    return changed


def existing_run(tracking: TrackingConfig, run_id: str | None) -> str | None:
    """`run_id` if the store still has that run (a resumed training continues its run), else None."""
    if not run_id:
        return None
    try:
        return client(tracking).get_run(run_id).info.run_id
    except Exception:  # MlflowException: the store was reset or the run deleted
        return None


def run_name(model_preset: str | None, steps: int, corpus_md5: str | None = None, *parts: str) -> str:
    """A run name people can tell apart in tables and legends, e.g. 'demo causal bpe 1000 steps corpus 3f2a9c1d'."""
    words = [model_preset or "custom", *(p for p in parts if p), f"{steps} steps"]
    if corpus_md5:
        words.append(f"corpus {corpus_md5[:8]}")
    return " ".join(words)


def prefect_tags() -> dict[str, str]:
    """Tags linking a run to the Prefect flow run it belongs to, if any: the id from the running flow's
    context when Prefect is loaded in this process, else from the environment a flow passed down."""
    flow_run_id, url = None, None
    if "prefect" in sys.modules:  # never import Prefect here: training runs without it
        try:
            from prefect.runtime import flow_run
            from prefect.utilities.urls import url_for

            # url_for gives the UI's route (runs/flow-run/<id>); flow_run.get_flow_run_ui_url() does not
            flow_run_id = flow_run.get_id()
            url = url_for("flow-run", obj_id=flow_run_id) if flow_run_id else None
        except Exception:  # outside a flow run, or a Prefect without these helpers
            flow_run_id, url = None, None
    flow_run_id = flow_run_id or os.environ.get(PREFECT_FLOW_RUN_ENV)
    if not flow_run_id:
        return {}
    if not url and os.environ.get(PREFECT_UI_URL_ENV):
        url = f"{os.environ[PREFECT_UI_URL_ENV].rstrip('/')}/runs/flow-run/{flow_run_id}"
    return {"prefect.flow_run_id": str(flow_run_id), **({"prefect.flow_run_url": url} if url else {})}


def run_tags(tags: dict[str, str] | None = None) -> dict[str, str]:
    """The tags every tokenmill run carries: git commit, Prefect flow run, and the caller's own."""
    commit = git_commit()
    return {**({GIT_COMMIT_TAG: commit} if commit else {}), **prefect_tags(), **(tags or {})}


def start_run(tracking: TrackingConfig, name: str | None = None, tags: dict[str, str] | None = None) -> str:
    """Create a run with its name and tags given at creation (a name drawn later from Python's random
    generator would repeat, because training seeds it first). Returns the run id."""
    experiment_id = ensure_experiment(tracking)
    if not name:
        now = time.time()
        name = f"{tracking.experiment} {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(now))}.{int(now % 1 * 1000):03d}"
    return client(tracking).create_run(experiment_id, run_name=name, tags=run_tags(tags)).info.run_id


def make_logger(tracking: TrackingConfig, run_id: str | None, name: str | None = None,
                tags: dict[str, str] | None = None):
    """Lightning's MLflow logger on `run_id` (a resumed run), or on a new run named `name`."""
    from lightning.pytorch.loggers import MLFlowLogger  # here: the registered pyfunc imports this module without Lightning

    ensure_experiment(tracking)
    if run_id is None:
        run_id = start_run(tracking, name, tags)
    return MLFlowLogger(experiment_name=tracking.experiment, tracking_uri=store_uri(tracking.tracking_uri),
                        run_id=run_id)


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
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


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
