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
    run(["git", "add", "-A"], root)  # dvc.lock and metrics.json (git-tracked) version this run
    run(["git", "commit", "-qm", "first run"], root)
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


def test_report_card_is_a_stage_output_logged_to_the_run(repo: Path):
    import mlflow

    page = (repo / "report.html").read_text(encoding="utf-8")
    assert "<h2>Data funnel</h2>" in page and "Loss curves" in page and page.count("data:image/png;base64,") >= 4
    run_id = json.loads((repo / "models/gpt/run.json").read_text())["run_id"]
    assert run_id in page
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow/mlflow.db")
    assert [a.path for a in client.list_artifacts(run_id, "report")] == ["report/report.html"]
    assert "report card       report.html" in run(["tokenmill", "summary"], repo)


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


def test_ad_hoc_run_keeps_the_versioned_model_and_metrics(repo: Path):
    versioned_metrics = (repo / "metrics.json").read_text()
    model_before = (repo / "models/gpt/model.pt").read_bytes()
    for stage in ("train", "evaluate"):
        run(["tokenmill", stage, "--set", "train.max_steps=2"], repo)
    ad_hoc = repo / "runs/train.max_steps=2"
    assert json.loads((ad_hoc / "models/gpt/stats.json").read_text())["steps"] == 2
    assert (ad_hoc / "metrics.json").read_text() != versioned_metrics
    assert (repo / "metrics.json").read_text() == versioned_metrics
    assert (repo / "models/gpt/model.pt").read_bytes() == model_before
    assert "Running stage" not in run([sys.executable, "-m", "dvc", "repro"], repo)  # nothing to bring back
    # each summary reads one run's figures
    versioned = run(["tokenmill", "summary"], repo)
    adhoc = run(["tokenmill", "summary", "--set", "train.max_steps=2"], repo)
    bpb = json.loads(versioned_metrics)["bits_per_byte"]
    assert f"{bpb:.4f}" in versioned and "8 steps" in versioned and "versioned run" in versioned
    assert f"{bpb:.4f}" not in adhoc and "2 steps" in adhoc and "ad-hoc run 'train.max_steps=2'" in adhoc


def test_param_change_reruns_only_that_stage_and_downstream(repo: Path):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["tokenize"]["vocab_size"] += 16
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([sys.executable, "-m", "dvc", "repro"], repo)
    assert "Running stage 'tokenize'" in out
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out
    assert "Running stage 'crawl'" not in out and "Running stage 'prepare'" not in out


def test_metrics_diff_compares_with_the_committed_run(repo: Path):
    """metrics.json is tracked by git, so `dvc metrics diff` compares the workspace with HEAD (or two commits)."""
    out = run([sys.executable, "-m", "dvc", "metrics", "diff", "--json"], repo)
    diff, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
    diff = diff["metrics.json"]
    assert diff["bits_per_byte"]["old"] != diff["bits_per_byte"]["new"]


def test_push_sends_the_corpus_to_the_remote(repo: Path):
    run([sys.executable, "-m", "dvc", "push", "-q"], repo)
    assert any((repo.parent / "remote").rglob("*")), "remote holds the pushed objects"


def test_a_new_corpus_keeps_the_evaluation_set_and_its_version(repo: Path):
    """The evalset stage reruns on a new corpus but keeps the set: its hash in dvc.lock stays, and the
    tokens are evaluated on it."""
    def locked(stage: str, path: str) -> str:
        lock = yaml.safe_load((repo / "dvc.lock").read_text())
        return next(out["md5"] for out in lock["stages"][stage]["outs"] if out["path"] == path)

    evalset_md5, corpus_md5 = locked("evalset", "data/evalset"), locked("prepare", "data/corpus")
    digest = json.loads((repo / "data/evalset/meta.json").read_text())["digest"]
    assert json.loads((repo / "data/tokens/meta.json").read_text())["eval_set"]["digest"] == digest
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["prepare"]["pii"]["email_placeholder"] = "<MAIL>"  # the tiny site's pages hold an e-mail address
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = run([sys.executable, "-m", "dvc", "repro", "evalset"], repo)
    assert "Running stage 'evalset'" in out and locked("prepare", "data/corpus") != corpus_md5
    assert "kept=True" in out  # `tokenmill evalset` left the set alone
    assert locked("evalset", "data/evalset") == evalset_md5
    assert json.loads((repo / "data/evalset/meta.json").read_text())["digest"] == digest
