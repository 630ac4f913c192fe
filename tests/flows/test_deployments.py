"""The served deployments on a real local Prefect server (`prefect server start` on 127.0.0.1):
a crawl run leads, through events, to a published corpus version and a training on exactly it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from pipeline_fixture import init_repo, make_project, served_deployments

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def wait_for(what: str, check, timeout: float, serve_log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(1)
    log = serve_log.read_text()[-6000:] if serve_log.is_file() else ""
    raise AssertionError(f"no {what} within {timeout:.0f}s; serve log:\n{log}")


def flow_runs(client, flow_name: str) -> list:
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    return client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))


def test_crawl_run_publishes_a_corpus_version_whose_event_trains_on_it(tmp_path: Path):
    import mlflow
    from prefect.client.orchestration import get_client
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.operations import CORPUS_RESOURCE, CORPUS_UPDATED
    from pipeline.champion import champion
    from pipeline.params import load_params

    project = init_repo(make_project(tmp_path / "project"), tmp_path / "remote")
    with served_deployments(project, tmp_path) as (api_url, env, served, serve_log):
        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            deployments = wait_for("served deployments", lambda: {
                d.name: d for d in client.read_deployments()} if len(client.read_deployments()) >= 6 else None,
                90, serve_log)
            assert set(deployments) == {"crawl-tiny", "prepare", "train", "evaluate-champion", "pipeline",
                                        "finetune"}
            assert deployments["train"].global_concurrency_limit.limit == 1
            # Serving creates each trigger's automation after its deployment: an event before it is lost.
            wait_for("event triggers", lambda: all(client.read_automations_by_name(f"{name}__automation_1") for name
                                                   in ("train", "evaluate-champion", "finetune")), 60, serve_log)
            assert deployments["crawl-tiny"].schedules[0].schedule.interval.total_seconds() == 7 * 86400

            client.create_flow_run_from_deployment(deployments["crawl-tiny"].id)
            completed = lambda runs: [r for r in runs if r.state and r.state.is_completed()]  # noqa: E731
            failed = lambda runs: [r for r in runs if r.state and r.state.is_final() and  # noqa: E731
                                   not r.state.is_completed()]

            def trained(count: int):
                runs = [r for name in ("crawl-source", "prepare-corpus", "train-on-corpus")
                        for r in flow_runs(client, name)]
                assert not failed(runs), [(r.name, r.state.message) for r in failed(runs)]
                done = completed(flow_runs(client, "train-on-corpus"))
                return done if len(done) >= count else None

            first = wait_for("triggered training", lambda: trained(1), 420, serve_log)[0]  # tokenize to export
            assert first.parameters["version"] == "corpus-v1"

            # The event itself, emitted again for the same version: a second training on it.
            emit_event(CORPUS_UPDATED, resource={"prefect.resource.id": CORPUS_RESOURCE},
                       payload={"version": "corpus-v1"})
            runs = wait_for("second training", lambda: trained(2), 300, serve_log)
            assert [r.parameters["version"] for r in runs] == ["corpus-v1", "corpus-v1"]

            # Each event also evaluated the champion; the second one found the first training's.
            def evaluated():
                runs = flow_runs(client, "evaluate-champion")
                assert not failed(runs), [(r.name, r.state.message) for r in failed(runs)]
                return completed(runs) if len(completed(runs)) >= 2 else None

            evaluations = wait_for("champion evaluations", evaluated, 300, serve_log)
            assert {r.parameters["version"] for r in evaluations} == {"corpus-v1"}

            # The first evaluation made registry version 1 the champion: its event started fine-tuning
            # (which fails here at once: this project has no examples/finetune data).
            finetunes = wait_for("fine-tuning on the new champion",
                                 lambda: flow_runs(client, "finetune-champion"), 120, serve_log)
            assert [(r.parameters["model"], r.parameters["version"]) for r in finetunes] == [("tokenmill", "1")]

    # corpus-v1 is a git tag on a commit of dvc.lock; the training's MLflow run names exactly that corpus.
    git = lambda *args: subprocess.run(["git", *args], cwd=project, capture_output=True, text=True,  # noqa: E731
                                       check=True).stdout
    assert git("tag", "--list", "corpus-v*").split() == ["corpus-v1"]
    tagged_lock = yaml.safe_load(git("show", "corpus-v1:dvc.lock"))
    corpus_md5 = next(o["md5"] for o in tagged_lock["stages"]["prepare"]["outs"] if o["path"] == "data/corpus")
    os.chdir(project)  # params' relative tracking URI
    try:
        params = load_params("params.yaml")
        best = champion(params.tracking)
    finally:
        os.chdir(ROOT)
    assert best is not None
    assert best["tags"]["corpus.version"] == "corpus-v1"
    assert best["tags"]["corpus.dvc_md5"] == corpus_md5
    assert "eval/bits_per_byte" in best["metrics"]
    with_champion_figures = [r for r in mlflow.MlflowClient(f"sqlite:///{project}/mlflow/mlflow.db").search_runs(
        [e.experiment_id for e in mlflow.MlflowClient(f"sqlite:///{project}/mlflow/mlflow.db").search_experiments()])
        if "eval/corpus-v1/bits_per_byte" in r.data.metrics]
    assert len(with_champion_figures) == 1, "the registry's champion measured on corpus-v1, on its own run"
    assert any((tmp_path / "remote").rglob("*")), "the corpus was pushed to the DVC remote"


@pytest.mark.skipif(tuple(int(p) for p in __import__("sqlalchemy").__version__.split(".")[:2]) >= (2, 1),
                    reason="this venv predates pyproject's sqlalchemy<2.1 pin (Prefect 3.8's scheduler "
                           "inserts no runs on SQLAlchemy 2.1)")
def test_the_server_schedules_the_first_crawl_of_a_source_never_crawled(tmp_path: Path, monkeypatch):
    from datetime import datetime, timezone

    from prefect.client.orchestration import get_client
    from prefect.schedules import Interval
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows import serve
    from flows.operations import crawl_source
    from flows.server import free_port, local_server

    monkeypatch.setattr(serve, "FIRST_RUN_DELAY", __import__("datetime").timedelta(seconds=15))
    with local_server(free_port(), home=tmp_path / "home") as api_url:
        now = datetime.now(timezone.utc)
        anchor = serve.recrawl_anchor(serve.DEFAULT_RECRAWL, None, now)
        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            crawl_source.to_deployment(name="crawl-tiny", schedule=Interval(serve.DEFAULT_RECRAWL, anchor_date=anchor),
                                       parameters={"source": "tiny"}).apply()
            runs = wait_for("a scheduled crawl", lambda: client.read_flow_runs() or None, 60, tmp_path / "none")
    first = min(r.expected_start_time for r in runs)
    assert abs((first - (now + serve.FIRST_RUN_DELAY)).total_seconds()) < 1
