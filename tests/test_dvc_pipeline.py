"""`dvc repro` of the whole pipeline in a real git + DVC repository, read back from MLflow."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_fixture import init_repo, make_project, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = make_project(tmp_path_factory.mktemp("dvc") / "project")
    init_repo(root, root.parent / "remote")
    run([sys.executable, "-m", "dvc", "repro"], root)
    return root


def test_repro_runs_every_stage_and_evaluates(repo: Path):
    metrics = json.loads((repo / "metrics.json").read_text())
    assert 0 < metrics["bits_per_byte"] < 20
    assert metrics["perplexity"] > 1
    for stage_out in ("data/crawl", "data/corpus", "data/tokens"):
        stats = json.loads((repo / stage_out / "stats.json").read_text())
        assert stats, stage_out
    corpus = json.loads((repo / "data/corpus/stats.json").read_text())
    assert 0 < corpus["documents_out"] < corpus["documents_in"]  # the exact duplicate page went


def test_mlflow_run_names_the_corpus_version(repo: Path):
    import mlflow

    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    corpus_md5 = next(out["md5"] for out in lock["stages"]["prepare"]["outs"] if out["path"] == "data/corpus")
    run_info = json.loads((repo / "models/gpt/run.json").read_text())
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow/mlflow.db")
    run = client.get_run(run_info["run_id"])
    assert run.data.params, "params were logged"
    assert "eval/bits_per_byte" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) >= 2
    digests = [d.dataset.digest for d in run.inputs.dataset_inputs]
    assert any(corpus_md5.startswith(d) or d.startswith(corpus_md5.removesuffix(".dir")) for d in digests), digests


def test_second_repro_changes_nothing(repo: Path):
    out = run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Running stage" not in out, out


def test_param_change_reruns_only_that_stage_and_downstream(repo: Path):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tokenize"]["vocab_size"] += 16
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Running stage 'tokenize'" in out
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out
    assert "Running stage 'crawl'" not in out and "Running stage 'prepare'" not in out


def test_push_sends_the_corpus_to_the_remote(repo: Path):
    run([sys.executable, "-m", "dvc", "push", "-q"], repo)
    assert any((repo.parent / "remote").rglob("*")), "remote holds the pushed objects"
