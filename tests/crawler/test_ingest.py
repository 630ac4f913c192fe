"""`tokenmill ingest`: web archives (WARC, WET) into documents as a crawl writes them, damage and all."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from crawler.config import CrawlConfig
from crawler.ingest import ingest
from tokenmill.documents import read_documents
from tokenmill.errors import UserError

from .warcs import (chunked, conversion, corrupt, gzip_per_record, html_page, http_response, member, record,
                    response, whole_gzip)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = CrawlConfig(min_text_chars=100, max_response_bytes=20_000)


def pages(n: int, start: int = 0) -> list[bytes]:
    return [response(f"http://example.org/p{i}.html", html_page(f"Page {i}", lang=("en", "pl", "fa")[i % 3]))
            for i in range(start, start + n)]


def documents(out: Path) -> dict[str, dict]:
    return {d.meta["url"]: {"id": d.id, "text": d.text, **d.meta} for d in read_documents(out / "documents")}


def stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def test_html_responses_become_documents_and_everything_else_is_counted(tmp_path):
    other = [
        record("warcinfo", "", b"software: test\r\n", "application/warc-fields"),
        record("request", "http://example.org/p0.html", b"GET /p0.html HTTP/1.1\r\n\r\n", "application/http; msgtype=request"),
        record("metadata", "http://example.org/p0.html", b"fetchTimeMs: 12\r\n", "application/warc-fields"),
        record("revisit", "http://example.org/p1.html", http_response(b""), "application/http; msgtype=response"),
        response("http://example.org/data.json", "{}" * 100, content_type="application/json"),
        response("http://example.org/gone.html", html_page("Gone"), status="404 Not Found"),
        response("http://example.org/stub.html", "<html><body><p>hi</p></body></html>"),
        record("response", "http://example.org/cut.html", http_response(html_page("Cut").encode()),
               "application/http; msgtype=response", {"WARC-Truncated": "length"}),
        response("http://example.org/huge.html", html_page("Huge", paragraphs=200)),
        response("http://example.org/p0.html", html_page("Page 0 again")),
        response("http://example.org/chunked.html", "", headers={"Transfer-Encoding": "chunked"}),
    ]
    body = chunked(html_page("Chunked", lang="pl-PL").encode())
    other[-1] = record("response", "http://example.org/chunked.html",
                       http_response(body, headers={"Transfer-Encoding": "chunked"}), "application/http; msgtype=response")
    archive = tmp_path / "crawl.warc.gz"
    archive.write_bytes(gzip_per_record(pages(3) + other))
    result = ingest([str(archive)], tmp_path / "out", CONFIG, source="arch")
    found = documents(tmp_path / "out")
    assert sorted(found) == ["http://example.org/chunked.html"] + [f"http://example.org/p{i}.html" for i in range(3)]
    page = found["http://example.org/p1.html"]
    assert page["title"] == "Page 1" and page["lang"] == "pl" and page["text"].startswith("Page 1")
    assert page["fetched_at"] == "2024-05-01T12:00:00Z" and page["status"] == 200 and page["source"] == "arch"
    assert page["id"].startswith("arch/") and page["declared_charset"] == "utf-8" and len(page["content_sha256"]) == 64
    assert found["http://example.org/p0.html"]["title"] == "Page 0"  # the first capture of a URL wins
    assert found["http://example.org/chunked.html"]["title"] == "Chunked"
    assert result["removed"] == {"http_404": 1, "metadata": 1, "not_html": 1, "repeated_url": 1, "request": 1,
                                 "revisit": 1, "too_large": 1, "too_short": 1, "warc_truncated": 1, "warcinfo": 1}
    assert result["documents_out"] == 4 and result["documents_in"] == 14 and result == stats(tmp_path / "out")
    assert result["bytes_in"] == archive.stat().st_size


def test_plain_whole_gzip_and_per_record_gzip_give_the_same_documents(tmp_path):
    records = pages(4)
    found = []
    for name, data in [("a.warc", b"".join(records)), ("b.warc.gz", whole_gzip(records)), ("c.warc.gz", gzip_per_record(records))]:
        (tmp_path / name).write_bytes(data)
        ingest([str(tmp_path / name)], tmp_path / f"out-{name}", CONFIG)
        found.append(documents(tmp_path / f"out-{name}"))
    assert len(found[0]) == 4 and found[0] == found[1] == found[2]


def test_wet_conversion_records_are_taken_as_text(tmp_path):
    text = "A converted page.\n" + "Its text, as Common Crawl extracted it. " * 10
    wet = tmp_path / "x.warc.wet.gz"
    wet.write_bytes(gzip_per_record([conversion("http://example.org/w", text, "pol,eng"), conversion("http://example.org/s", "short")]))
    result = ingest([str(wet)], tmp_path / "out", CONFIG)
    found = documents(tmp_path / "out")
    assert list(found) == ["http://example.org/w"] and found["http://example.org/w"]["text"] == text.strip()
    assert found["http://example.org/w"]["lang"] == "pol" and result["removed"] == {"too_short": 1}


def test_damaged_records_are_skipped_counted_and_named(tmp_path, caplog):
    good = [member(r) for r in pages(6)]
    wrong_length = member(record("response", "http://example.org/bad.html", http_response(html_page("Bad").encode()),
                                 "application/http; msgtype=response", length=50))
    bad_chunk = member(record("response", "http://example.org/chunk.html",
                              http_response(b"zz\r\nnot hex\r\n", headers={"Transfer-Encoding": "chunked"}),
                              "application/http; msgtype=response"))
    parts = [good[0], b"garbage between records", good[1], corrupt(good[2]), wrong_length, good[3], bad_chunk, good[4],
             good[5][: len(good[5]) // 2]]
    archive = tmp_path / "damaged.warc.gz"
    archive.write_bytes(b"".join(parts))
    offsets = [sum(map(len, parts[:i])) for i in range(len(parts))]
    caplog.set_level("WARNING", logger="crawler")
    result = ingest([str(archive)], tmp_path / "out", CONFIG)
    assert sorted(documents(tmp_path / "out")) == [f"http://example.org/p{i}.html" for i in (0, 1, 3, 4)]
    assert result["removed"] == {"bad_chunk": 1, "bad_gzip": 1, "bad_length": 1, "garbage": 1, "truncated_gzip": 1}
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for reason, index in [("garbage", 1), ("bad_gzip", 3), ("bad_length", 4), ("truncated_gzip", 8)]:
        assert f"{archive}: offset {offsets[index]}: {reason}, record skipped" in warnings, warnings
    plain = tmp_path / "damaged.warc"  # the same faults without compression: garbage, a length, a cut
    plain.write_bytes(pages(1)[0] + b"junk\r\n" + pages(1, 1)[0].replace(b"Content-Length: ", b"Content-Length: 1")
                      + pages(1, 2)[0] + pages(1, 3)[0][:200])
    result = ingest([str(plain)], tmp_path / "out-plain", CONFIG)
    assert sorted(documents(tmp_path / "out-plain")) == ["http://example.org/p0.html", "http://example.org/p2.html"]
    assert result["removed"] == {"bad_length": 1, "garbage": 1, "truncated": 1}


def test_unreadable_files_are_named_and_only_all_of_them_fail(tmp_path, capsys, caplog):
    (tmp_path / "notes.warc.gz").write_bytes(member(b"just some text, not a WARC file"))
    (tmp_path / "good.warc.gz").write_bytes(gzip_per_record(pages(2)))
    missing = tmp_path / "missing.warc.gz"
    result = ingest([str(tmp_path / "notes.warc.gz"), str(tmp_path / "good.warc.gz"), str(missing)], tmp_path / "out", CONFIG)
    assert result["documents_out"] == 2 and set(result["files_unreadable"]) == {str(tmp_path / "notes.warc.gz"), str(missing)}
    assert "not a WARC file" in result["files_unreadable"][str(tmp_path / "notes.warc.gz")]
    from pipeline.cli import main

    caplog.clear()
    code = main(["ingest", str(tmp_path / "notes.warc.gz"), str(missing), "--out", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and "no file could be read" in err and "Traceback" not in err
    assert f"{missing}: cannot read it (No such file or directory)" in [r.getMessage() for r in caplog.records]


def test_listings_and_directories_name_the_archives(tmp_path):
    archives = tmp_path / "crawl-data"
    archives.mkdir()
    for i in range(3):
        (archives / f"part-{i}.warc.gz").write_bytes(gzip_per_record(pages(1, i)))
    listing = tmp_path / "warc.paths"
    listing.write_text("crawl-data/part-2.warc.gz\ncrawl-data/part-0.warc.gz\n")
    ingest([str(listing)], tmp_path / "listed", CONFIG, base_url=str(tmp_path))
    assert sorted(documents(tmp_path / "listed")) == ["http://example.org/p0.html", "http://example.org/p2.html"]
    result = ingest([str(archives)], tmp_path / "all", CONFIG, limit=2)
    assert result["files"] == 2 and len(documents(tmp_path / "all")) == 2
    with pytest.raises(UserError, match="warc.paths:1: relative path 'crawl-data/part-2.warc.gz' needs --base-url"):
        ingest([str(listing)], tmp_path / "unresolved", CONFIG)


def test_one_and_two_workers_write_the_same_bytes(tmp_path):
    files = []
    for i in range(3):
        files.append(tmp_path / f"f{i}.warc.gz")
        files[-1].write_bytes(gzip_per_record(pages(3, 3 * i)))
    config = CrawlConfig(min_text_chars=100, shard_size=2)
    one = ingest([str(f) for f in files], tmp_path / "one", config)
    two = ingest([str(f) for f in files], tmp_path / "two", config, workers=2)
    assert one == two and one["documents_out"] == 9
    shards = sorted(p.name for p in (tmp_path / "one" / "documents").iterdir())
    assert len(shards) == 6 and shards == sorted(p.name for p in (tmp_path / "two" / "documents").iterdir())
    for name in shards:
        assert (tmp_path / "one" / "documents" / name).read_bytes() == (tmp_path / "two" / "documents" / name).read_bytes()


def test_a_killed_ingest_never_reads_a_finished_file_again(tmp_path):
    first, second = tmp_path / "a.warc.gz", tmp_path / "b.warc.gz"
    first.write_bytes(gzip_per_record(pages(2)))
    os.mkfifo(second)  # the second file blocks its reader: the ingest is killed while it waits
    out = tmp_path / "out"
    paths = [str(first), str(second)]
    child = multiprocessing.get_context("fork").Process(target=ingest, args=(paths, out, CONFIG))
    child.start()
    done = tmp_path / "out.partial" / "files" / "00000" / "result.json"
    deadline = time.monotonic() + 60
    while not done.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert done.exists() and child.is_alive()
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    second.unlink()
    second.write_bytes(gzip_per_record(pages(2, 2)))
    first.write_bytes(b"not read again: a resumed ingest keeps the finished part")
    result = ingest(paths, out, CONFIG)
    assert sorted(documents(out)) == [f"http://example.org/p{i}.html" for i in range(4)]
    assert result["files_unreadable"] == {} and not (tmp_path / "out.partial").exists()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    """moto's S3 server on 127.0.0.1 (as tests/pipeline/test_s3.py): a real S3 API, nothing off the machine."""
    pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
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
    client.create_bucket(Bucket="archives")
    s3fs.S3FileSystem.clear_instance_cache()
    yield client
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


@pytest.mark.slow  # moto's server and a Dask cluster take seconds to start
def test_archives_and_listings_on_s3_read_here_and_on_dask_workers(tmp_path, s3):
    for i in range(2):
        s3.put_object(Bucket="archives", Key=f"crawl-data/seg/f{i}.warc.gz", Body=gzip_per_record(pages(2, 2 * i)))
    s3.put_object(Bucket="archives", Key="crawl-data/warc.paths.gz",
                  Body=member(b"crawl-data/seg/f1.warc.gz\ncrawl-data/seg/f0.warc.gz\n"))
    listed = ingest(["s3://archives/crawl-data/warc.paths.gz"], tmp_path / "listed", CONFIG, base_url="s3://archives")
    whole = ingest(["s3://archives/crawl-data/seg"], tmp_path / "dir", CONFIG)
    assert listed["documents_out"] == whole["documents_out"] == 4 and documents(tmp_path / "listed") == documents(tmp_path / "dir")
    assert listed["bytes_in"] == whole["bytes_in"] > 0
    from dask.distributed import LocalCluster

    # workers in this process: the Dask path (scheduler, tasks, results) without starting interpreters
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        on_dask = ingest(["s3://archives/crawl-data/warc.paths.gz"], tmp_path / "dask", CONFIG,
                         base_url="s3://archives", dask_address=cluster.scheduler_address)
    assert on_dask == listed
    for shard in sorted((tmp_path / "listed" / "documents").iterdir()):
        assert shard.read_bytes() == (tmp_path / "dask" / "documents" / shard.name).read_bytes()
    from pipeline.cli import main  # the documents are a crawl's: prepare takes them as they are

    assert main(["prepare", "--in", str(tmp_path / "dask" / "documents"), "--out", str(tmp_path / "corpus"),
                 "--steps", "normalize,exact_dedup", "--params", str(ROOT / "params.yaml")]) == 0
    assert stats(tmp_path / "corpus")["documents_in"] == 4
