"""Corpus versions in a real git + DVC repository: publish, `tokenmill corpus list|checkout`, `tokenmill status`."""

from __future__ import annotations

import contextlib
import json

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from corpus_fixture import TEXTS, prepare_and_publish
from pipeline_fixture import init_repo, make_project, project_env

ROOT = Path(__file__).resolve().parents[2]
@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """Two published corpus versions (3 then 4 documents) and an MLflow run tagged with the first."""
    import mlflow

    root = tmp_path_factory.mktemp("corpus")
    project = make_project(root / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["prepare"]["steps"] = ["normalize", "exact_dedup"]  # tiny texts: no quality filters
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(project, root / "remote")
    with contextlib.chdir(project):
        first, created_first = prepare_and_publish(project, TEXTS[:3])
        second, created_second = prepare_and_publish(project, TEXTS)
        assert created_first and created_second
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow/mlflow.db")
        experiment = client.create_experiment("tokenmill", artifact_location=(project / "mlflow/a").as_uri())
        trained = client.create_run(experiment, tags={"corpus.dvc_md5": first.md5, "corpus.version": first.tag})
        client.log_metric(trained.info.run_id, "eval/bits_per_byte", 2.5)
        (project / "run_id").write_text(trained.info.run_id)
    return project


def tokenmill(project: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**project_env(project), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)


def test_publishing_tags_each_new_corpus_and_pushes_it(repo: Path, monkeypatch: pytest.MonkeyPatch):
    from pipeline import corpus
    from pipeline.params import load_params

    monkeypatch.chdir(repo)
    assert list(corpus.tags()) == ["corpus-v1", "corpus-v2"]
    lock = yaml.safe_load(subprocess.run(["git", "show", "corpus-v2:dvc.lock"], cwd=repo, capture_output=True,
                                         text=True, check=True).stdout)
    assert corpus.locked_md5(lock, "data/corpus") == corpus.locked_md5(yaml.safe_load(
        (repo / "dvc.lock").read_text()), "data/corpus")
    assert any((repo.parent / "remote").rglob("*")), "pushed to the DVC remote"
    # Nothing changed since: publishing again names the same version and tags nothing.
    version, created = corpus.publish(load_params("params.yaml"))
    assert (version.tag, created) == ("corpus-v2", False)


def test_corpus_list_shows_every_version_with_documents_hash_and_runs(repo: Path):
    proc = tokenmill(repo, "corpus", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    versions = json.loads(proc.stdout)["versions"]
    assert [v["tag"] for v in versions] == ["corpus-v1", "corpus-v2"]
    assert [v["documents"] for v in versions] == [3, 4]
    assert versions[0]["runs"] == [(repo / "run_id").read_text()] and versions[1]["runs"] == []
    assert versions[0]["md5"] != versions[1]["md5"] and all(v["md5"].endswith(".dir") for v in versions)
    table = tokenmill(repo, "corpus", "list").stdout
    assert table.splitlines()[0].split()[:3] == ["version", "documents", "tokens"]
    assert any(line.startswith("corpus-v1") and versions[0]["md5"] in line for line in table.splitlines())


def test_checkout_brings_an_older_version_back_even_from_the_remote_only(repo: Path):
    shutil.rmtree(repo / ".dvc/cache")  # only the remote has the data now
    proc = tokenmill(repo, "corpus", "checkout", "corpus-v1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((repo / "data/corpus/stats.json").read_text())["documents_out"] == 3
    back = tokenmill(repo, "corpus", "checkout", "corpus-v2")
    assert back.returncode == 0, back.stderr
    assert json.loads((repo / "data/corpus/stats.json").read_text())["documents_out"] == 4


def test_unknown_version_is_one_line_naming_the_known_ones(repo: Path):
    proc = tokenmill(repo, "corpus", "checkout", "corpus-v9")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "tokenmill corpus: error: corpus version 'corpus-v9' not found; known versions: corpus-v1, corpus-v2"]


def test_status_shows_sources_versions_and_the_champion(repo: Path):
    import mlflow

    before = tokenmill(repo, "status")
    assert before.returncode == 0, before.stderr
    assert "tiny" in before.stdout and "last crawl" in before.stdout
    assert "champion\n  none yet" in before.stdout
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo}/mlflow/mlflow.db")
    client.create_registered_model("tokenmill")  # what evaluate's promotion gate does (training/registry.py)
    run_id = (repo / "run_id").read_text()
    registered = client.create_model_version("tokenmill", f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("tokenmill", "champion", registered.version)
    found = json.loads(tokenmill(repo, "status", "--json").stdout)
    assert [v["version"] for v in found["corpus_versions"]] == ["corpus-v1", "corpus-v2"]
    assert found["champion"]["run_id"] == run_id and found["champion"]["version"] == 1
    assert found["champion"]["corpus_version"] == "corpus-v1"
    assert found["champion"]["metrics"] == {"eval/bits_per_byte": 2.5}
    assert found["sources"][0]["documents"] == 4

