"""A grid of DVC experiments as a Prefect flow: `tokenmill sweep train.lr=0.001,0.002 model.preset=nano`.

    python -m flows.sweep [--params params.yaml] [--parallel 2] KEY=V1,V2 ...

One `dvc exp run --temp -S KEY=V ...` per point of the grid (each in its own temporary copy of the
workspace, so points run side by side), at most `--parallel` at once. Their MLflow runs are grouped
under one parent run (`mlflow.parentRunId`), and they all log to the store the workspace uses, made
absolute (the temporary copies have no mlflow/ of their own): the tracking server when
`make mlflow-server` runs, which is what parallel points should write through; else the SQLite file.
`dvc exp show` lists the experiments; `dvc exp apply NAME` brings one into the workspace.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import os
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from prefect import flow, get_run_logger, task
from prefect.task_runners import ThreadPoolTaskRunner

from flows.commands import DVC, run_command
from flows.report import report_stage
from training.tracking import client, store_uri
from pipeline.params import load_params
from tokenmill.errors import UserError
from tokenmill.locations import without_credentials

SWEEP_TAG = "tokenmill.sweep"


def parse_grid(specs: list[str]) -> dict[str, list]:
    """`train.lr=0.001,0.002` -> {"train.lr": [0.001, 0.002]} (values parsed as YAML)."""
    grid = {}
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise UserError(f"sweep: {spec!r}: expected KEY=V1,V2,..., e.g. train.lr=0.001,0.002")
        grid[key] = [yaml.safe_load(value) for value in values.split(",")]
    return grid


def points(grid: dict[str, list]) -> list[dict]:
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def point_name(sweep: str, point: dict) -> str:
    text = "-".join(f"{key.rsplit('.', 1)[-1]}{value}" for key, value in point.items())
    return re.sub(r"[^A-Za-z0-9-]+", "_", f"{sweep}-{text}")


def mlflow_credentials(uri: str) -> dict[str, str]:
    """The `user:token@` of a tracking URI as MLflow's environment variables (empty without one)."""
    parts = urlsplit(uri)
    if parts.username is None:
        return {}
    return {"MLFLOW_TRACKING_USERNAME": unquote(parts.username), "MLFLOW_TRACKING_PASSWORD": unquote(parts.password or "")}


@task(name="experiment")
def experiment_task(name: str, point: dict, tracking_uri: str) -> str:
    sets = [*(f"{key}={value}" for key, value in point.items()), f"tracking.tracking_uri={tracking_uri}"]
    run_command([*DVC, "exp", "run", "--temp", "--name", name, *(arg for s in sets for arg in ("-S", s))])
    return name


def group_runs(tracking, parent_id: str, started_ms: int, grid_points: dict[str, dict]) -> dict[str, str]:
    """Tag each point's MLflow run (found by its params, started after the sweep) with the parent run."""
    mlflow_client = client(tracking)
    parent = mlflow_client.get_run(parent_id)
    found = {}
    for run in mlflow_client.search_runs([parent.info.experiment_id], max_results=1000,
                                         filter_string=f"attributes.start_time >= {started_ms}"):
        if run.info.run_id == parent_id:
            continue
        for name, point in grid_points.items():
            if name not in found and all(str(run.data.params.get(k)) == str(v) for k, v in point.items()):
                mlflow_client.set_tag(run.info.run_id, "mlflow.parentRunId", parent_id)
                mlflow_client.set_tag(run.info.run_id, SWEEP_TAG, name)
                found[name] = run.info.run_id
                break
    return found


@flow(name="tokenmill-sweep", log_prints=True)
def sweep(grid: dict[str, list], params_path: str = "params.yaml", parallel: int = 2) -> dict:
    logger = get_run_logger()
    params = load_params(params_path)
    tracking_uri = store_uri(params.tracking.tracking_uri)
    if tracking_uri.startswith("sqlite:") and parallel > 1:
        logger.warning("%d experiments at once writing one SQLite file: start `make mlflow-server` to log "
                       "through the tracking server instead", parallel)
    name = time.strftime("sweep-%Y%m%d-%H%M%S")
    grid_points = {point_name(name, point): point for point in points(grid)}
    from training.tracking import ensure_experiment

    tracking = type(params.tracking)(**{**vars(params.tracking), "tracking_uri": tracking_uri})
    experiment_id = ensure_experiment(tracking)
    mlflow_client = client(tracking)
    parent = mlflow_client.create_run(experiment_id, run_name=name, tags={SWEEP_TAG: name})
    mlflow_client.log_param(parent.info.run_id, "grid", json.dumps(grid))
    started_ms = parent.info.start_time
    # The experiments' params (dvc exp) and the task's parameters (Prefect's database) get the URI without
    # its user:token@; the trainings read those from MLflow's environment variables instead.
    os.environ.update(mlflow_credentials(tracking_uri))
    futures = [experiment_task.with_options(task_run_name=f"experiment-{point_name}").submit(
        point_name, point, without_credentials(tracking_uri)) for point_name, point in grid_points.items()]
    failed = []
    for future in futures:
        try:
            future.result()
        except Exception as exc:  # every point is waited for; the failures are reported together
            failed.append(str(exc))
    runs = group_runs(tracking, parent.info.run_id, started_ms, grid_points)
    mlflow_client.set_terminated(parent.info.run_id, status="FAILED" if failed else "FINISHED")
    report_stage("sweep", {"parent_run": parent.info.run_id, "experiments": len(grid_points),
                           "failed": len(failed), **{n: runs.get(n) for n in grid_points}})
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(grid_points)} experiments failed: {failed[0]}")
    return {"parent_run": parent.info.run_id, "experiments": {n: runs.get(n) for n in grid_points}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--parallel", type=int, default=2, help="experiments at once (default: 2)")
    parser.add_argument("grid", nargs="+", metavar="KEY=V1,V2")
    args = parser.parse_args(argv)
    try:
        grid = parse_grid(args.grid)
        load_params(args.params)
        if not Path(".dvc").is_dir():
            raise UserError("sweep: not a DVC repository (DVC experiments need one)")
        result = sweep.with_options(task_runner=ThreadPoolTaskRunner(max_workers=max(1, args.parallel)))(
            grid=grid, params_path=args.params, parallel=args.parallel)
    except UserError as exc:
        print(f"tokenmill sweep: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"tokenmill sweep: failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
