"""The pipeline as a real Prefect flow (temporary API server), on a tiny site."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipeline_fixture import init_repo, make_project, project_env, run

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = init_repo(make_project(tmp_path / "project"), tmp_path / "remote")
    for key, value in project_env(root).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    return root


def test_pipeline_flow_runs_one_task_per_stage_and_versions_them(project: Path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline

    with prefect_test_harness(server_startup_timeout=120):
        state = pipeline(params_path="params.yaml", return_state=True)
        assert state.is_completed(), state
        metrics = state.result()
        flow_run_id = state.state_details.flow_run_id
        with get_client(sync_client=True) as client:
            task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    names = sorted({run.name.rsplit("-", 1)[0] for run in task_runs})
    assert {"crawl", "prepare", "tokenize", "train", "evaluate"} <= set(names), names
    assert metrics["bits_per_byte"] > 0
    assert json.loads((project / "metrics.json").read_text())["bits_per_byte"] == metrics["bits_per_byte"]
    assert (project / "models/gpt/run.json").is_file()
    # Each stage was recorded in dvc.lock as `dvc repro` would have: nothing is left to reproduce.
    assert "Running stage" not in run([sys.executable, "-m", "dvc", "repro"], project)


def test_bad_params_fail_before_any_stage(project: Path):
    from prefect.testing.utilities import prefect_test_harness

    from flows.pipeline import pipeline
    from tokenmill.errors import ConfigError

    (project / "params.yaml").write_text("train:\n  max_stepz: 3\n")
    with prefect_test_harness(server_startup_timeout=120):
        with pytest.raises(ConfigError, match="max_stepz"):
            pipeline(params_path="params.yaml")
    assert not (project / "data/crawl").exists()
