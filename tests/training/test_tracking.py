"""MLflow hygiene: run names, the experiment's kind, a store that moves with its checkout, Prefect links."""

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient

from training import tracking as mlf
from training.config import TrackingConfig

ROOT = Path(__file__).resolve().parents[2]


def test_runs_are_named_at_creation_even_after_seeding(tracking):
    names = [mlf.run_name("nano", steps, "3f2a9c1d77.dir", "causal", "bpe") for steps in (30, 1000)]
    run_ids = []
    for name in names + [None, None]:
        random.seed(1337)  # what training does before the run exists
        run_ids.append(mlf.make_logger(tracking, None, name=name).run_id)
    client = MlflowClient(tracking.tracking_uri)
    got = [client.get_run(r).info.run_name for r in run_ids]
    assert got[:2] == ["nano causal bpe 30 steps corpus 3f2a9c1d", "nano causal bpe 1000 steps corpus 3f2a9c1d"]
    assert len(set(got)) == 4  # unnamed runs differ too


def test_experiment_opens_as_model_training(tracking):
    experiment_id = mlf.ensure_experiment(tracking)
    client = MlflowClient(tracking.tracking_uri)
    assert client.get_experiment(experiment_id).tags[mlf.EXPERIMENT_KIND_TAG] == "custom_model_development"
    client.set_experiment_tag(experiment_id, mlf.EXPERIMENT_KIND_TAG, "genai_development")
    assert mlf.ensure_experiment(tracking) == experiment_id  # an older experiment is put right
    assert client.get_experiment(experiment_id).tags[mlf.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_moved_checkout_writes_artifacts_into_its_own_tree(tmp_path, monkeypatch):
    old, new = tmp_path / "old" / "checkout", tmp_path / "new" / "checkout"
    old.mkdir(parents=True)
    (old / "note.txt").write_text("logged before the move")
    tracking = TrackingConfig(tracking_uri="sqlite:///mlflow/mlflow.db", experiment="moved",
                              artifact_location="mlflow/artifacts")  # the params.yaml defaults
    monkeypatch.chdir(old)
    before = mlf.start_run(tracking, "before")
    mlf.client(tracking).log_artifact(before, "note.txt")
    assert (old / "mlflow" / "artifacts" / before / "artifacts" / "note.txt").is_file()

    shutil.move(old, new)
    # A later process in the moved checkout (an open store would still hold the old file).
    script = (
        "import json; from training import tracking as mlf; from training.config import TrackingConfig\n"
        "t = TrackingConfig(tracking_uri='sqlite:///mlflow/mlflow.db', experiment='moved',"
        " artifact_location='mlflow/artifacts')\n"
        f"after = mlf.start_run(t, 'after'); c = mlf.client(t); c.log_artifact(after, 'note.txt')\n"
        f"c.log_artifact({before!r}, 'note.txt', 'again')\n"
        f"print(json.dumps([after, c.get_run({before!r}).info.artifact_uri,"
        f" sorted(a.path for a in c.list_artifacts({before!r}))]))\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], cwd=new, capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    after, before_uri, before_artifacts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (new / "mlflow" / "artifacts" / after / "artifacts" / "note.txt").is_file()
    assert (new / "mlflow" / "artifacts" / before / "artifacts" / "again" / "note.txt").is_file()
    assert not old.exists()  # nothing was written into the old tree
    assert before_uri.startswith((new / "mlflow" / "artifacts").as_uri()) and before_artifacts == ["again", "note.txt"]
    assert "artifact location moved" in proc.stderr


def test_run_links_to_its_prefect_flow_run(tracking, monkeypatch):
    monkeypatch.delenv(mlf.PREFECT_FLOW_RUN_ENV, raising=False)
    plain = mlf.start_run(tracking, "outside a flow")
    monkeypatch.setenv(mlf.PREFECT_FLOW_RUN_ENV, "0a1b2c3d-flow-run")
    monkeypatch.setenv(mlf.PREFECT_UI_URL_ENV, "http://127.0.0.1:4200/")
    linked = mlf.start_run(tracking, "inside a flow", tags={"stage": "train"})
    client = MlflowClient(tracking.tracking_uri)
    assert "prefect.flow_run_id" not in client.get_run(plain).data.tags
    tags = client.get_run(linked).data.tags
    assert tags["prefect.flow_run_id"] == "0a1b2c3d-flow-run" and tags["stage"] == "train"
    assert tags["prefect.flow_run_url"] == "http://127.0.0.1:4200/runs/flow-run/0a1b2c3d-flow-run"


@pytest.mark.slow
def test_run_started_inside_a_prefect_flow_links_to_it(tracking, monkeypatch):
    from prefect import flow
    from prefect.testing.utilities import prefect_test_harness

    monkeypatch.delenv(mlf.PREFECT_FLOW_RUN_ENV, raising=False)

    @flow(name="tracking-link")
    def start() -> str:
        return mlf.start_run(tracking, "inside a real flow")

    with prefect_test_harness(server_startup_timeout=120):
        state = start(return_state=True)
        run_id = state.result()
    tags = MlflowClient(tracking.tracking_uri).get_run(run_id).data.tags
    assert tags["prefect.flow_run_id"] == str(state.state_details.flow_run_id)
    assert tags["prefect.flow_run_url"].endswith(f"/runs/flow-run/{state.state_details.flow_run_id}")
