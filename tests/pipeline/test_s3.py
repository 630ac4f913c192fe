"""The DVC remote on S3: a published corpus version goes to the bucket and comes back from it, against
moto's S3 server on 127.0.0.1 (a real HTTP S3 API; no AWS account, no traffic off the machine)."""

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
from pipeline_fixture import init_repo, make_project, project_env, run

pytest.importorskip("moto.server")
pytest.importorskip("dvc_s3")

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "tokenmill-test"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def test_corpus_versions_are_pushed_to_and_pulled_from_an_s3_remote(tmp_path: Path, s3, monkeypatch):
    endpoint, client = s3
    project = make_project(tmp_path / "project")
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["prepare"]["steps"] = ["normalize", "exact_dedup"]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(project, tmp_path / "unused-local-remote")
    dvc = [sys.executable, "-m", "dvc"]
    run(dvc + ["remote", "add", "-f", "-d", "s3", f"s3://{BUCKET}/tokenmill"], project)
    run(dvc + ["remote", "modify", "s3", "endpointurl", endpoint], project)
    run(["git", "commit", "-qam", "S3 remote"], project)

    with contextlib.chdir(project):
        version, created = prepare_and_publish(project, TEXTS[:3])
    assert created and version.tag == "corpus-v1"
    stored = [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    md5 = version.md5.removesuffix(".dir")
    assert f"tokenmill/files/md5/{md5[:2]}/{md5[2:]}.dir" in stored, stored
    assert len(stored) >= 3  # the manifest, the shard, stats.json, ...

    shutil.rmtree(project / ".dvc/cache")
    shutil.rmtree(project / "data/corpus")
    env = {**project_env(project), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "corpus", "checkout", "corpus-v1"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((project / "data/corpus/stats.json").read_text())["documents_out"] == 3
