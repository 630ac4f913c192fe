import glob
import hashlib
import json
import re
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.config import load_source
from crawler.run import crawl
from crawler.urls import document_id
from tokenmill.documents import read_documents
from tokenmill.errors import TransientError, UserError

from .hostile import HostileServer, html
from .conftest import HttpServer, chain_site, crawl_config, small_site, source_for, write_source


SMALL_FIELDS = {"license": "CC-BY-4.0", "languages": ["en", "pl"]}


@pytest.fixture(scope="module")
def small_crawl(small_server, tmp_path_factory):
    directory = tmp_path_factory.mktemp("crawl")
    source = source_for(small_server, directory, **SMALL_FIELDS)
    stats = crawl([source], directory / "out", crawl_config())
    return small_server, directory / "out", stats


def test_crawl_fetches_in_scope_html_and_nothing_else(small_crawl):
    server, out, stats = small_crawl
    documents = {d.meta["url"].removeprefix(server.url): d for d in read_documents(out / "documents")}
    # d3 is deeper than max_depth 2; 127.0.0.2 is off-domain; the rest was dropped for a reason
    assert sorted(documents) == ["/a.html", "/b.html", "/deep/d1.html", "/deep/d2.html", "/index.html"]
    assert stats["removed"] == {"not_html": 1, "robots": 1, "too_large": 1, "too_short": 1}
    source = stats["sources"]["small"]
    assert source["documents"] == stats["documents_out"] == 5
    assert source["pages_fetched"] == 7  # 5 documents, data.txt, short.html (big.html was cut off)
    assert json.loads((out / "stats.json").read_text()) == stats
    assert not out.with_name("out.partial").exists()


def test_document_columns(small_crawl):
    server, out, _ = small_crawl
    table = pq.read_table(out / "documents")
    assert set(table.column_names) == {"id", "text", "url", "canonical_url", "source", "title", "lang", "depth",
                                       "fetched_at", "status", "content_type", "declared_charset", "detected_charset",
                                       "content_sha256", "license", "source_languages"}
    rows = {r["url"].removeprefix(server.url): r for r in table.to_pylist()}
    home, beta, deep = rows["/index.html"], rows["/b.html"], rows["/deep/d2.html"]
    body = (server.directory / "index.html").read_bytes()
    assert home["content_sha256"] == hashlib.sha256(body).hexdigest() and home["status"] == 200
    assert home["content_type"].startswith("text/html") and home["declared_charset"] == "utf-8"
    assert home["detected_charset"] == "utf-8" and home["canonical_url"] == f"{server.url}/index.html"
    assert home["license"] == "CC-BY-4.0" and home["source_languages"] == ["en", "pl"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", home["fetched_at"])
    assert home["id"] == document_id("small", home["url"]) and home["id"].startswith("small/")
    assert (home["lang"], beta["lang"], deep["lang"]) == ("en", "pl-PL", None)
    assert (home["depth"], beta["depth"], deep["depth"]) == (0, 1, 2)
    assert home["title"] == "Home" and "quick brown fox" in home["text"] and "<p>" not in home["text"]
    assert [r["url"] for r in table.to_pylist()] == sorted(r["url"] for r in table.to_pylist())


def test_raw_responses_are_in_warc(small_crawl):
    server, out, _ = small_crawl
    uris = set()
    for path in glob.glob(str(out / "warc" / "*.warc.gz")):
        with open(path, "rb") as handle:
            for record in ArchiveIterator(handle):
                uris.add(record.rec_headers.get_header("WARC-Target-URI").removeprefix(server.url))
                assert record.rec_type == "response"
    assert {"/index.html", "/data.txt", "/short.html", "/deep/d2.html"} <= uris
    assert "/private/secret.html" not in uris


def test_crawls_of_an_unchanged_site_are_identical(small_crawl, tmp_path):
    """... also when the text is extracted in a process pool rather than in the event loop."""
    server, out, stats = small_crawl
    again = crawl([source_for(server, tmp_path, **SMALL_FIELDS)], tmp_path / "again", crawl_config(extract_workers=2))
    assert again == stats
    first, second = (pq.read_table(d / "documents").drop(["fetched_at"]) for d in (out, tmp_path / "again"))
    assert first.equals(second)  # all but the time of the fetch


def test_private_addresses_are_refused_unless_allowed(small_server, tmp_path):
    source = source_for(small_server, tmp_path, allow_private=False)
    with pytest.raises(UserError, match=r"crawl stored nothing: 1 pages tried: private_address 1 "
                                        r"\(refused addresses: loopback 1\)"):
        crawl([source], tmp_path / "out", crawl_config())
    assert not (tmp_path / "out").exists()
    stats = json.loads((tmp_path / "out.partial" / "stats.json").read_text())
    assert stats["refused"] == {"loopback": 1} and stats["pages_fetched"] == 0


def test_a_site_that_does_not_answer_is_a_transient_failure(tmp_path):
    server = HttpServer(tmp_path)
    server.stop()  # its port is now closed: connections are refused
    source = source_for(server, tmp_path)
    with pytest.raises(TransientError, match="crawl stored nothing: the site did not answer"):
        crawl([source], tmp_path / "out", crawl_config(retry_times=0))
    assert not (tmp_path / "out").exists()


def test_a_crashed_crawl_process_is_a_transient_failure(tmp_path):
    server = HttpServer(chain_site(tmp_path / "site", 40))
    try:
        source = source_for(server, tmp_path, max_pages=100, max_depth=50)
        state = tmp_path / "out.partial"

        def kill_the_child() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                for proc in Path("/proc").glob("[0-9]*"):
                    try:
                        command = (proc / "cmdline").read_bytes().split(b"\0")
                    except OSError:
                        continue
                    if b"crawler.job" in command and str(state).encode() in command:
                        if (state / "state" / "small" / "pages.jsonl").exists():
                            os.kill(int(proc.name), signal.SIGKILL)
                            return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_the_child)
        killer.start()
        with pytest.raises(TransientError, match="the crawl process was killed by signal 9"):
            crawl([source], tmp_path / "out", crawl_config(download_delay=0.1, concurrent_requests_per_domain=1))
        killer.join()
    finally:
        server.stop()


def test_the_child_log_reaches_the_crawler_logger_without_dumps(small_crawl, tmp_path, caplog):
    server, _, _ = small_crawl
    with caplog.at_level(logging.INFO, logger="crawler"):
        crawl([source_for(server, tmp_path)], tmp_path / "out", crawl_config())
    lines = [r.getMessage() for r in caplog.records if r.name == "crawler"]
    assert any("Spider opened" in line for line in lines) and any("Spider closed" in line for line in lines)
    assert not any(dump in line for line in lines for dump in ("Overridden settings", "Enabled downloader",
                                                               "Dumping Scrapy stats", "Versions"))
    assert len(lines) < 20


def test_served_directory_gets_stable_urls(tmp_path):
    site = small_site(tmp_path / "site")
    path = write_source(tmp_path, name="local", serve=str(site), allow_private=True, max_pages=3, max_depth=1,
                        start_urls=["/index.html"])
    stats = crawl([load_source(str(path))], tmp_path / "out", crawl_config(concurrent_requests_per_domain=1))
    assert stats["sources"]["local"]["pages_fetched"] == 3  # stopped at max_pages
    urls = [d.meta["url"] for d in read_documents(tmp_path / "out" / "documents")]
    assert urls and all(u.startswith("http://local.localhost/") for u in urls)


def test_a_served_copy_crawls_to_identical_bytes(tmp_path):
    """Its documents are dated by its files (Last-Modified), not by the crawl."""
    site = small_site(tmp_path / "site")
    path = write_source(tmp_path, name="local", serve=str(site), allow_private=True, max_pages=50, max_depth=2,
                        start_urls=["/index.html"])
    for out in ("out", "again"):
        crawl([load_source(str(path))], tmp_path / out, crawl_config())
    first, second = (sorted((tmp_path / d / "documents").iterdir()) for d in ("out", "again"))
    assert [a.read_bytes() for a in first] == [b.read_bytes() for b in second]


def test_max_pages_counts_every_fetched_page(tmp_path):
    links = ["/missing1.html", "/missing2.html", "/ok1.html", "/missing3.html", "/ok2.html", "/ok3.html"]
    routes = {"/index.html": html("Home", links)} | {p: html(p) for p in links if "ok" in p}
    with HostileServer(routes) as server:
        source = source_for(server, tmp_path, max_pages=4, concurrency=1)
        stats = crawl([source], tmp_path / "out", crawl_config())
    # a 404 is a fetched page too (requests already in the downloader still arrive: "max_pages")
    assert stats["pages_fetched"] == 4 and stats["sources"]["small"]["pages_tried"] == 7


def test_missing_served_directory_says_what_to_do(tmp_path):
    path = write_source(tmp_path, name="gone", serve=str(tmp_path / "nowhere"), allow_private=True,
                        max_pages=3, max_depth=1, start_urls=["/index.html"])
    with pytest.raises(UserError, match="nowhere: site not found; run `make site`"):
        crawl([load_source(str(path))], tmp_path / "out", crawl_config())
