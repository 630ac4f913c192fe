"""Object storage, against moto's S3 server on 127.0.0.1 (a real HTTP S3 API; no AWS account, no traffic
off the machine): the DVC remote on S3 (a published corpus version goes to the bucket and comes back), and
stages reading and writing document shards at s3:// URLs through fsspec (s3fs)."""

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
pytest.importorskip("s3fs")

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
    clear_fsspec_instances = getattr(__import__("s3fs").S3FileSystem, "clear_instance_cache", lambda: None)
    clear_fsspec_instances()  # fsspec caches filesystems by arguments, not by the endpoint in the environment
    yield endpoint, client
    clear_fsspec_instances()
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


DOCUMENTS = TEXTS + TEXTS[:2] + [text + " And one more sentence." for text in TEXTS]  # with duplicates


def corpus_files(read) -> dict[str, bytes]:
    return {name: read(name) for name in ("part-00000.parquet", "removed/part-00000.parquet", "stats.json")}


def test_prepare_reads_and_writes_shards_on_s3_as_it_does_locally(tmp_path: Path, s3, capsys):
    from pipeline.cli import main
    from pipeline_fixture import tiny_params
    from tokenmill.documents import Document, ShardWriter, read_documents

    _, client = s3
    params = tiny_params()
    params["prepare"]["steps"] = ["normalize", "exact_dedup"]
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    docs = [Document(f"tiny/{i}", text, {"source": "tiny"}) for i, text in enumerate(DOCUMENTS)]
    for where in (str(tmp_path / "crawl/documents"), f"s3://{BUCKET}/crawl/documents"):
        with ShardWriter(where, shard_size=4) as writer:  # several shards, in one schema
            writer.write_all(docs)
    assert [d.id for d in read_documents(f"s3://{BUCKET}/crawl/documents")] == [d.id for d in docs]

    prepare = ["prepare", "--params", str(params_file)]
    assert main(prepare + ["--in", str(tmp_path / "crawl/documents"), "--out", str(tmp_path / "corpus")]) == 0
    assert main(prepare + ["--in", f"s3://{BUCKET}/crawl/documents", "--out", f"s3://{BUCKET}/corpus"]) == 0
    local = corpus_files(lambda name: (tmp_path / "corpus" / name).read_bytes())
    remote = corpus_files(lambda name: client.get_object(Bucket=BUCKET, Key=f"corpus/{name}")["Body"].read())
    assert remote == local
    assert 0 < json.loads(local["stats.json"])["documents_out"] < len(DOCUMENTS)  # duplicates removed
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="corpus/")["Contents"]}
    assert keys == {f"corpus/{p.relative_to(tmp_path / 'corpus').as_posix()}"
                    for p in (tmp_path / "corpus").rglob("*") if p.is_file()}

    # Its own earlier output is replaced; anything else at the URL is refused on one line.
    assert main(prepare + ["--in", f"s3://{BUCKET}/crawl/documents", "--out", f"s3://{BUCKET}/corpus"]) == 0
    capsys.readouterr()
    assert main(prepare + ["--in", f"s3://{BUCKET}/corpus", "--out", f"s3://{BUCKET}/crawl/documents"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"tokenmill prepare: error: s3://{BUCKET}/crawl/documents: is a prefix without a stats.json, "
                   "not an earlier prepare output; not replacing it (choose another --out, or pass --force to "
                   "move it aside)"]
    assert main(prepare + ["--in", f"s3://{BUCKET}/nothing", "--out", f"s3://{BUCKET}/x"]) == 2
    assert f"s3://{BUCKET}/nothing: no such file or directory" in capsys.readouterr().err
