"""The pipeline as a real Prefect flow (temporary API server), on a tiny site in a real git + DVC repo."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from pipeline_fixture import init_repo, make_project, project_env, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, harness) -> Path:
    root = init_repo(make_project(tmp_path / "project"), tmp_path / "remote")
    for key, value in project_env(root).items():
        if key != "PREFECT_API_URL":
            monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    return root


def task_run_names(flow_run_id, expected: set[str]) -> set[str]:
    """The flow run's task run names (without their suffix), once `expected` are among them: task runs
    reach the API through events, a moment after the flow returns."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            names = {run.name.rsplit("-", 1)[0] for run in runs}
            if expected <= names or time.monotonic() > deadline:
                return names
            time.sleep(0.5)


def artifacts(flow_run_id) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(
            any_=[flow_run_id])))
    return {artifact.key: artifact.data for artifact in found}


def test_pipeline_runs_versions_reports_and_then_skips_every_stage(project: Path):
    import mlflow

    from flows.pipeline import pipeline

    state = pipeline(params_path="params.yaml", return_state=True)
    assert state.is_completed(), state
    results = state.result()
    flow_run_id = state.state_details.flow_run_id
    stage_names = {"crawl", "prepare", "tokenize", "train", "evaluate"}
    version_names = {f"version-{stage}" for stage in stage_names}
    names = task_run_names(flow_run_id, stage_names | version_names)
    assert stage_names | version_names <= names, names
    assert not any(stats["skipped"] for stats in results.values())
    # A markdown table per stage, with the stage's figures (tokenize's were logged as `{}` before).
    tables = artifacts(flow_run_id)
    for stage in ("crawl", "prepare", "tokenize", "train", "evaluate"):
        assert "| figure | value |" in tables[f"{stage}-summary"], stage
    tokens_stats = json.loads((project / "data/tokens/stats.json").read_text())
    assert any(f"| {key} |" in tables["tokenize-summary"] for key in tokens_stats if key != "stage")
    assert f"| bits_per_byte | {results['evaluate']['bits_per_byte']:.4g} |" in tables["evaluate-summary"]
    # The training's MLflow run names this flow run; the flow run links to it.
    run_id = json.loads((project / "models/gpt/run.json").read_text())["run_id"]
    mlflow_run = mlflow.MlflowClient(tracking_uri="sqlite:///mlflow/mlflow.db").get_run(run_id)
    assert mlflow_run.data.tags["prefect.flow_run_id"] == str(flow_run_id)
    assert run_id in tables["mlflow-run"]
    # Each stage was recorded in dvc.lock as `dvc repro` would have: nothing is left to reproduce.
    assert "Running stage" not in run([sys.executable, "-m", "dvc", "repro"], project)

    # Nothing changed: a second run skips every stage and versions nothing.
    second = pipeline(params_path="params.yaml", return_state=True)
    assert all(stats["skipped"] for stats in second.result().values()), second.result()
    names = task_run_names(second.state_details.flow_run_id, stage_names)
    assert stage_names <= names and not any(name.startswith("version") for name in names), names
    assert "up to date in DVC: skipped" in artifacts(second.state_details.flow_run_id)["train-summary"]

    # One value of one stage's params changed: that stage and those downstream run again, not those upstream.
    params = json.loads(json.dumps(__import__("yaml").safe_load((project / "params.yaml").read_text())))
    params["evaluate"]["max_new_tokens"] += 1
    (project / "params.yaml").write_text(__import__("yaml").safe_dump(params, sort_keys=False))
    third = pipeline(params_path="params.yaml", return_state=True).result()
    ran = [stage for stage, stats in third.items() if not stats["skipped"]]
    assert ran[0] == "evaluate" and not {"crawl", "prepare", "tokenize", "train"} & set(ran), ran


def test_crawl_is_retried_on_a_transient_fault_and_never_on_a_user_error(project: Path,
                                                                       monkeypatch: pytest.MonkeyPatch):
    from flows import pipeline as flows_pipeline
    from pipeline import stages
    from tokenmill.errors import TransientError, UserError

    real_crawl = stages.crawl
    calls: list[str] = []

    asked = []

    def crawl_that_crashes_once(params, sources=None, out=None):
        calls.append("crawl")
        asked.append(sources)
        if len(calls) == 1:
            raise TransientError("the crawler exited with status -9; run the crawl again to resume")
        return real_crawl(params, sources, out)

    monkeypatch.setattr(stages, "crawl", crawl_that_crashes_once)
    # The real task, its backoff shortened for the test.
    fast = flows_pipeline.crawl_task.with_options(retry_delay_seconds=0, retry_jitter_factor=None)
    monkeypatch.setitem(flows_pipeline.STAGE_TASKS, "crawl", fast)
    assert flows_pipeline.crawl_task.retries == 3 and flows_pipeline.crawl_task.retry_delay_seconds == [30, 60, 120]

    from flows.operations import crawl_source

    state = crawl_source(source="tiny", return_state=True)  # the served crawl flow: crawl, version, event
    assert state.is_completed(), state
    assert calls == ["crawl", "crawl"]
    assert asked == [["tiny"], ["tiny"]], "the source's own crawl; the others are carried over"
    assert (project / "data/crawl/stats.json").is_file()

    calls.clear()

    def crawl_with_a_bad_source(params, sources=None, out=None):
        calls.append("crawl")
        raise UserError("sources/tiny.yaml: max_pages: must be > 0, got 0")

    monkeypatch.setattr(stages, "crawl", crawl_with_a_bad_source)
    state = flows_pipeline.crawl_task.with_options(retry_delay_seconds=0)("params.yaml", [], force=True,
                                                                          return_state=True)
    assert state.is_failed()
    assert calls == ["crawl"], "a user error is not retried"
    assert "sources/tiny.yaml: max_pages: must be > 0" in state.message


def test_bad_params_fail_before_any_stage_with_one_line(project: Path):
    (project / "params.yaml").write_text("train:\n  max_stepz: 3\n")
    proc = __import__("subprocess").run([sys.executable, "-m", "flows.pipeline"], cwd=project,
                                        env={**project_env(project), "PYTHONPATH": str(Path(__file__).parents[2])},
                                        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("tokenmill flow pipeline: error: ")
    assert "max_stepz" in proc.stderr.strip().splitlines()[-1]
    assert not (project / "data/crawl").exists()
