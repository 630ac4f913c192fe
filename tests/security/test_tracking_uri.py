"""Credentials in a tracking URI (`user:token@`) never reach run.json, params or logs."""

from __future__ import annotations

import pytest

from tokenmill.locations import without_credentials


@pytest.mark.parametrize("uri, stored", [
    ("http://alice:s3cret@127.0.0.1:5000/prefix?workspace=a", "http://127.0.0.1:5000/prefix?workspace=a"),
    ("https://token@mlflow.example.org", "https://mlflow.example.org"),
    ("postgresql://mlflow:pw%40rd@db:5432/mlflow", "postgresql://db:5432/mlflow"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("sqlite:///mlflow/mlflow.db", "sqlite:///mlflow/mlflow.db"),
    ("mlruns", "mlruns"),
])
def test_credentials_are_stripped_and_everything_else_kept(uri: str, stored: str):
    assert without_credentials(uri) == stored


def test_a_sweep_hands_credentials_to_its_trainings_by_environment_not_by_params():
    from flows.sweep import mlflow_credentials

    assert mlflow_credentials("http://alice:s%3Acret@127.0.0.1:5000") == {
        "MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "s:cret"}
    assert mlflow_credentials("http://127.0.0.1:5000") == {}


def test_the_run_json_a_training_writes_holds_no_credentials(tmp_path):
    """training.train writes run.json through _run_record: the tracking URI without its user:token@."""
    from training.train import run_record

    record = run_record("0123", "1", "tokenmill", "http://alice:s3cret@127.0.0.1:5000")
    assert record["tracking_uri"] == "http://127.0.0.1:5000" and "s3cret" not in str(record)
