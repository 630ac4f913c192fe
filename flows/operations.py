"""The flows the served deployments run (flows/serve.py), chained by events:

    crawl-<source>  (schedule: the source's recrawl_after)  ─ tokenmill.crawl.completed ─►
    prepare         (prepare stage, then publish: dvc push, commit dvc.lock, tag corpus-vN)
                    ─ tokenmill.corpus.updated {version, md5} ─►
    train           (tokenize, train, evaluate on exactly that corpus version; then the champion)
                    ─ tokenmill.corpus.updated ─►
    evaluate-champion  (the registry's champion measured on that corpus version, with its own tokenizer)

Each stage goes through flows.pipeline.run_stage: skipped when DVC finds it up to date, under its
lock, reported as an artifact, versioned in DVC.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.events import emit_event

from flows.commands import dvc
from flows.locks import path_lock
from flows.parameters import check_deployment_run
from flows.pipeline import run_stage
from pipeline import champion, corpus, stages
from pipeline.params import load_params
from training.tracking import client
from tokenmill.errors import UserError

CRAWL_COMPLETED = "tokenmill.crawl.completed"
CORPUS_UPDATED = "tokenmill.corpus.updated"
CORPUS_RESOURCE = "tokenmill.corpus"


def source_resource(name: str) -> str:
    return f"tokenmill.source.{name}"


@flow(name="crawl-source", log_prints=True)
def crawl_source(source: str, params_path: str = "params.yaml") -> dict:
    """Re-crawl `source` (the other sources in the crawl output carried over as they are), version
    the crawl output, and say so with `tokenmill.crawl.completed`."""
    check_deployment_run(params_path, source=source)
    params = load_params(params_path)
    if source not in params.crawl.sources:
        raise UserError(f"{params_path}: crawl.sources does not list {source!r}")
    stats = run_stage("crawl", params_path, [], sources=[source], force=True)
    emit_event(CRAWL_COMPLETED, resource={"prefect.resource.id": source_resource(source)},
               payload={"documents": stats.get("documents_out"), "pages": stats.get("pages_fetched")})
    return stats


@task(name="publish-corpus")
def publish_task(params_path: str) -> dict:
    """dvc push the corpus, commit dvc.lock, tag corpus-vN; emit tokenmill.corpus.updated for a new version."""
    params = load_params(params_path)
    with path_lock("dvc"), path_lock("git"):
        version, created = corpus.publish(params)
    logger = get_run_logger()
    if not created:
        logger.info("corpus unchanged: still %s (%s)", version.tag, version.md5)
        return {"version": version.tag, "md5": version.md5, "published": False}
    logger.info("published %s (%s)", version.tag, version.md5)
    emit_event(CORPUS_UPDATED, resource={"prefect.resource.id": CORPUS_RESOURCE},
               related=[{"prefect.resource.id": f"{CORPUS_RESOURCE}.{version.tag}",
                         "prefect.resource.role": "corpus-version"}],
               payload={"version": version.tag, "md5": version.md5, "commit": version.commit})
    return {"version": version.tag, "md5": version.md5, "published": True}


@flow(name="prepare-corpus", log_prints=True)
def prepare_corpus(params_path: str = "params.yaml") -> dict:
    """Prepare (skipped when the crawl did not change), version, publish."""
    check_deployment_run(params_path)
    run_stage("prepare", params_path, [])
    return publish_task(params_path)


@task(name="fetch-corpus")
def fetch_corpus_task(version: str, md5: str, path: str, out: str) -> str:
    """Another version than the workspace's: its corpus from the DVC cache or remote into `out`."""
    with path_lock(f"fetch-{version}"):  # the train and evaluate-champion flows of one event both fetch it
        if Path(out).is_dir():
            from training.tracking import dvc_md5

            if dvc_md5(Path(out)) == md5:
                return out
        dvc("get", ".", path, "--rev", version, "-o", out, "--force")
    return out


@flow(name="train-on-corpus", log_prints=True)
def train_on_corpus(version: str, params_path: str = "params.yaml") -> dict:
    """tokenize → train → evaluate on exactly corpus `version`; evaluate's promotion gate makes the run's
    model the champion when it beats the holder.

    On the workspace's corpus the stages are versioned in DVC (skipped when up to date); on an
    older version they run under runs/<version>/ and are not (dvc.lock records the latest)."""
    check_deployment_run(params_path, version=version)
    logger = get_run_logger()
    params = load_params(params_path)
    target = corpus.find(params, version)
    with path_lock("dvc"):
        current = corpus.locked_md5(yaml.safe_load(Path(corpus.LOCK).read_text()), params.paths.corpus)
    overrides: list[str] = []
    if current != target.md5:
        root = Path(params.paths.runs) / version
        logger.info("%s is not the workspace's corpus (%s): training under %s", version, current, root)
        overrides = [f"paths.{key}={root / getattr(params.paths, key)}"
                     for key in ("corpus", "tokens", "model", "checkpoints", "metrics")]
        fetch_corpus_task(version, target.md5, params.paths.corpus, str(root / params.paths.corpus))
    downstream = stages.STAGE_NAMES[stages.STAGE_NAMES.index("prepare") + 1:]  # tokenize, train, evaluate, ...
    results = {stage: run_stage(stage, params_path, overrides) for stage in downstream}
    params = load_params(params_path, overrides)
    run_file = Path(params.paths.model) / "run.json"
    if params.tracking.enabled and run_file.is_file():
        run_id = json.loads(run_file.read_text(encoding="utf-8"))["run_id"]
        client(params.tracking).set_tag(run_id, "corpus.version", version)
        best = champion.champion(params.tracking)  # evaluate's promotion gate moved the alias, or not
        crowned = best is not None and best["run_id"] == run_id
        logger.info("MLflow run %s trained on %s%s", run_id, version, ": the new champion" if crowned else "")
        results["run"] = {"run_id": run_id, "corpus_version": version, "champion": crowned}
    return results


@flow(name="evaluate-champion", log_prints=True)
def evaluate_champion(version: str, params_path: str = "params.yaml") -> dict:
    """Measure the registry's champion (alias `champion` of tracking.registered_model) on corpus `version`,
    encoded with the champion's own tokenizer; its figures go on the champion's MLflow run as
    eval/<version>/<key> (pipeline.champion.evaluate_on_corpus). Nothing to do without a champion."""
    check_deployment_run(params_path, version=version)
    logger = get_run_logger()
    params = load_params(params_path)
    if not params.tracking.enabled:
        logger.info("tracking.enabled is false: there is no registry to take the champion from")
        return {"corpus_version": version, "champion": None}
    target = corpus.find(params, version)
    evalset = Path(params.paths.evalset) if params.paths.evalset else None  # the evaluate stage's set
    with path_lock("dvc"):
        current = corpus.locked_md5(yaml.safe_load(Path(corpus.LOCK).read_text()), params.paths.corpus)
    if current == target.md5:
        with path_lock("prepare"):  # the workspace's corpus, not replaced by a prepare meanwhile
            result = champion.evaluate_on_corpus(Path(params.paths.corpus), version, params.tokenize,
                                                 params.evaluate, params.tracking, evalset)
    else:
        out = Path(params.paths.runs) / version / params.paths.corpus
        fetch_corpus_task(version, target.md5, params.paths.corpus, str(out))
        result = champion.evaluate_on_corpus(out, version, params.tokenize, params.evaluate, params.tracking, evalset)
    if result is None:
        logger.info("no champion in %s yet: nothing to evaluate on %s", params.tracking.registered_model, version)
        return {"corpus_version": version, "champion": None}
    logger.info("champion %s v%d on %s: %.4f bits per byte (eval set %s)", result["model"], result["version"],
                version, result["bits_per_byte"], result["eval_set"])
    return {"corpus_version": version, "champion": result["version"], "run_id": result["run_id"],
            "bits_per_byte": result["bits_per_byte"], "eval_set": result["eval_set"]}
