"""The whole pipeline as a Prefect flow: one task per stage over the same package functions as the CLI.

Tasks take the params file and overrides (strings), so every task run is reproducible from its
inputs in the Prefect UI. Training runs as its own process: Lightning's DDP launcher re-runs the
calling command once per rank, which must be `tokenmill train`, never this flow.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task

from tokenmill.errors import UserError
from tokenmill.params import load_params


def _log_stats(name: str, stats: dict) -> dict:
    logger = get_run_logger()
    keys = ("documents_in", "documents_out", "bytes_in", "bytes_out", "removed")
    logger.info("%s: %s", name, {k: stats[k] for k in keys if k in stats})
    return stats


def _retry_unless_user_error(task, task_run, state) -> bool:
    """Network trouble deserves a retry; a mistake in a source file or params does not."""
    return not isinstance(state.data, UserError)


@task(name="crawl", retries=2, retry_delay_seconds=10, retry_condition_fn=_retry_unless_user_error)
def crawl_task(params_path: str, overrides: list[str]) -> dict:
    from crawler.config import load_source
    from crawler.run import crawl

    params = load_params(params_path, overrides)
    sources = [load_source(name, Path(params.paths.sources)) for name in params.crawl.sources]
    return _log_stats("crawl", crawl(sources, Path(params.paths.crawl), params.crawl))


@task(name="prepare")
def prepare_task(params_path: str, overrides: list[str]) -> dict:
    from dataprep.pipeline import run

    params = load_params(params_path, overrides)
    stats = run(Path(params.paths.crawl) / "documents", Path(params.paths.corpus), params.prepare)
    return _log_stats("prepare", stats)


@task(name="version")
def version_task(stage: str, params_path: str, overrides: list[str]) -> str | None:
    """Record a stage's outputs in dvc.lock and the DVC cache, as `dvc repro` would.

    Skipped outside a DVC repository, and when the run's params are not dvc.yaml's (another params
    file, or overrides): dvc.lock would then pair params.yaml with outputs other values made."""
    logger = get_run_logger()
    if not Path(".dvc").is_dir():
        logger.info("no DVC repository here: %s outputs are not versioned", stage)
        return None
    if overrides or Path(params_path).resolve() != Path("params.yaml").resolve():
        logger.warning("%s outputs not versioned in DVC: made with %s %s", stage, params_path, overrides)
        return None
    _run([sys.executable, "-m", "dvc", "commit", "--force", stage])
    return stage


@task(name="tokenize")
def tokenize_task(params_path: str, overrides: list[str]) -> dict:
    from training.tokenizer import tokenize

    params = load_params(params_path, overrides)
    return _log_stats("tokenize", tokenize(Path(params.paths.corpus), Path(params.paths.tokens), params.tokenize))


@task(name="train")
def train_task(params_path: str, overrides: list[str]) -> None:
    sets = [arg for override in overrides for arg in ("--set", override)]
    _run([sys.executable, "-m", "tokenmill.cli", "train", "--params", params_path, *sets])


@task(name="evaluate")
def evaluate_task(params_path: str, overrides: list[str]) -> dict:
    from training.evaluate import evaluate

    params = load_params(params_path, overrides)
    metrics = evaluate(Path(params.paths.model), Path(params.paths.tokens), Path(params.paths.metrics),
                       params.evaluate, params.tracking)
    get_run_logger().info("evaluation: %s", metrics)
    return metrics


def _run(command: list[str]) -> None:
    """Run a command, streaming its output into the task's log; a non-zero exit fails the task."""
    logger = get_run_logger()
    logger.info("running: %s", " ".join(command))
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            logger.info(line.rstrip())
    if proc.returncode:
        raise RuntimeError(f"{' '.join(command[:4])} exited with status {proc.returncode}")


@flow(name="tokenmill-pipeline", log_prints=True)
def pipeline(params_path: str = "params.yaml", overrides: list[str] | None = None) -> dict:
    """crawl → prepare → tokenize → train → evaluate, each stage versioned in DVC when in a DVC repo."""
    overrides = list(overrides or [])
    load_params(params_path, overrides)  # fail fast on a bad params file, before any work
    for stage, stage_task in (("crawl", crawl_task), ("prepare", prepare_task), ("tokenize", tokenize_task),
                              ("train", train_task)):
        stage_task(params_path, overrides)
        version_task(stage, params_path, overrides)
    metrics = evaluate_task(params_path, overrides)
    version_task("evaluate", params_path, overrides)
    return metrics


if __name__ == "__main__":
    from tokenmill.cli import main

    sys.exit(main(["flow", "pipeline", *sys.argv[1:]]))
