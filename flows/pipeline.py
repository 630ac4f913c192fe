"""The whole pipeline as a Prefect flow: one task per stage over pipeline/stages.py, as the CLI.

Each stage, under its lock (flows/locks.py): skipped when DVC finds it up to date (`dvc status`
of that stage: its deps, params and outputs are those dvc.lock recorded), otherwise run, reported
(a log line and a markdown artifact `<stage>-summary`) and versioned in DVC by a task named
`version-<stage>` (`dvc commit`, as `dvc repro` would record it). With another params file or
overrides nothing is skipped or versioned: dvc.lock would pair params.yaml with outputs that other
values made. Training runs as its own process: Lightning's DDP launcher re-runs the calling
command once per rank, which must be `tokenmill train`, never this flow.

    python -m flows.pipeline [--params FILE] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.tasks import exponential_backoff

from flows.champion import announce_champion, champion_number
from flows.commands import dvc, in_dvc_repo, retry_transient, run_command, stage_changes
from flows.locks import path_lock
from flows.parameters import check_deployment_run
from flows.report import report_stage
from pipeline import stages
from pipeline.params import load_params
from tokenmill.errors import UserError
from tokenmill.locations import without_credentials

MLFLOW_UI = "http://127.0.0.1:5000"  # `make ui`


def can_version(params_path: str, overrides: list[str]) -> bool:
    return in_dvc_repo() and not overrides and Path(params_path).resolve() == Path("params.yaml").resolve()


def stats_path(stage: str, params) -> Path:
    """Where a stage's figures are on disk: its output's stats.json, or its output when that is JSON
    (evaluation's metrics file)."""
    out = Path(getattr(params.paths, stages.stage(stage).paths[0]))
    return out if out.suffix else out / "stats.json"


def read_stats(stage: str, params) -> dict[str, Any]:
    path = stats_path(stage, params)
    return json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" and path.is_file() else {}


def up_to_date(stage: str, params_path: str, overrides: list[str]) -> bool:
    if not can_version(params_path, overrides):
        return False
    changes = stage_changes(stage)
    if changes:
        get_run_logger().info("%s changed: %s", stage, json.dumps(changes)[:500])
    return not changes


def attach_crawler_logger() -> None:
    """Scrapy's lines reach the `crawler` logger: send it to the run's log (as PREFECT_LOGGING_EXTRA_LOGGERS
    would, whatever was imported first)."""
    crawler_logger = logging.getLogger("crawler")
    crawler_logger.setLevel(logging.INFO)
    for handler in logging.getLogger("prefect.extra").handlers:
        if handler not in crawler_logger.handlers:
            crawler_logger.addHandler(handler)


@task(name="crawl", retries=3, retry_delay_seconds=exponential_backoff(backoff_factor=30), retry_jitter_factor=0.2,
      retry_condition_fn=retry_transient)
def crawl_task(params_path: str, overrides: list[str], sources: list[str] | None = None,
               force: bool = False) -> dict:
    """Crawl (every `crawl.sources`, or `sources`); `force` re-crawls even when DVC finds it up to date."""
    params = load_params(params_path, overrides)
    if not force and not sources and up_to_date("crawl", params_path, overrides):
        return _skipped("crawl", params)
    attach_crawler_logger()
    return _ran("crawl", stages.crawl(params, sources))


@task(name="train")
def train_task(params_path: str, overrides: list[str]) -> dict:
    params = load_params(params_path, overrides)
    if up_to_date("train", params_path, overrides):
        stats = _skipped("train", params)
    else:
        run_command(stages.train_command(params_path, overrides))
        stats = _ran("train", read_stats("train", params))
    link_mlflow_run(params)
    return stats


@task(name="evaluate")
def evaluate_task(params_path: str, overrides: list[str]) -> dict:
    params = load_params(params_path, overrides)
    if up_to_date("evaluate", params_path, overrides):
        return _skipped("evaluate", params)
    before = champion_number(params)
    metrics = stages.evaluate(params)
    announce_champion(params, before)  # tokenmill.champion.updated when the registry's champion moved
    return _ran("evaluate", {k: v for k, v in metrics.items() if k != "samples"})


@task(name="version")
def version_task(stage: str) -> str:
    """Record the stage's outputs in dvc.lock and the DVC cache, as `dvc repro` would."""
    dvc("commit", "--force", stage)
    return stage


def stage_task(stage: stages.Stage):
    """The task of a stage that needs nothing but its params: its pipeline.stages function, unless DVC finds
    the stage up to date."""

    @task(name=stage.name)
    def run(params_path: str, overrides: list[str]) -> dict:
        params = load_params(params_path, overrides)
        if up_to_date(stage.name, params_path, overrides):
            return _skipped(stage.name, params)
        return _ran(stage.name, stage.run(params))

    return run


def _ran(stage: str, stats: dict) -> dict:
    report_stage(stage, stats)
    return {**stats, "skipped": False}


def _skipped(stage: str, params) -> dict:
    stats = read_stats(stage, params)
    report_stage(stage, stats, note="up to date in DVC: skipped")
    return {**stats, "skipped": True}


def link_mlflow_run(params) -> str | None:
    """Tie the flow run and the training's MLflow run together: tags on the MLflow run, a link artifact here."""
    from prefect.artifacts import create_link_artifact
    from prefect.runtime import flow_run

    run_file = Path(params.paths.model) / "run.json"
    if not run_file.is_file():
        return None
    run = json.loads(run_file.read_text(encoding="utf-8"))
    from training.tracking import client

    configured = params.tracking.tracking_uri
    recorded = run.get("tracking_uri") or configured  # run.json holds it without credentials; params may have them
    client = client(params.tracking, configured if without_credentials(configured) == recorded else recorded)
    if flow_run.id:
        client.set_tag(run["run_id"], "prefect.flow_run_id", flow_run.id)
        client.set_tag(run["run_id"], "prefect.flow_run_name", flow_run.name)
    url = f"{MLFLOW_UI}/#/experiments/{run.get('experiment_id')}/runs/{run['run_id']}"
    create_link_artifact(url, link_text=f"MLflow run {run['run_id']}", key="mlflow-run",
                         description="the training's MLflow run (open with `make ui`)")
    get_run_logger().info("MLflow run %s: %s", run["run_id"], url)
    return run["run_id"]


# Every stage of pipeline/stages.py has a task: its own when it does more than run (crawl: sources and
# retries; train: its own process; evaluate: the champion event), else one made from the table.
OWN_TASKS = {"crawl": crawl_task, "train": train_task, "evaluate": evaluate_task}
STAGE_TASKS = {stage.name: OWN_TASKS.get(stage.name) or stage_task(stage) for stage in stages.STAGES}


def run_stage(stage: str, params_path: str, overrides: list[str], **kwargs) -> dict:
    """One stage under its lock: run (or skip) it, then version it unless skipped or not versionable."""
    with path_lock(stage):
        stats = STAGE_TASKS[stage](params_path, overrides, **kwargs)
        if not stats.get("skipped") and can_version(params_path, overrides):
            version_task.with_options(name=f"version-{stage}")(stage)
    return stats


@flow(name="tokenmill-pipeline", log_prints=True)
def pipeline(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """crawl → prepare → evalset → tokenize → train → evaluate; stages DVC finds up to date are skipped."""
    overrides = list(overrides or [])
    check_deployment_run(params_path, overrides)  # API callers: no addresses, URIs or paths (flows/parameters.py)
    load_params(params_path, overrides)  # fail fast on a bad params file, before any work
    results = {stage: run_stage(stage, params_path, overrides) for stage in stages.STAGE_NAMES}
    if not can_version(params_path, overrides):
        get_run_logger().warning("outputs not versioned in DVC: made with %s %s (or outside a DVC repository)",
                                 params_path, overrides)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        load_params(args.params, args.overrides)  # a bad params file: one line, before any server starts
        state = pipeline(params_path=args.params, overrides=args.overrides, return_state=True)
        results = state.result()
    except UserError as exc:
        print(f"tokenmill flow pipeline: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a failed task: its one-line message (the log above has the details)
        print(f"tokenmill flow pipeline: failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({stage: {k: v for k, v in stats.items() if not isinstance(v, (dict, list))}
                      for stage, stats in results.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
