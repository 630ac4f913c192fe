"""A crawl stopped part-way (SIGTERM, or SIGKILL) resumes, and every page ends up exactly once."""

import json
import signal
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator
from warcio.warcwriter import WARCWriter

from crawler.config import load_source
from crawler.run import crawl
from tokenmill.documents import read_documents

from .conftest import HttpServer, chain_site, crawl_config, write_source

PAGES = 40
SLOW = {"download_delay": 0.1, "concurrent_requests_per_domain": 1}  # ~5 s: time to stop it midway
CRAWL = ("import json, sys; from pathlib import Path; from crawler.config import CrawlConfig, load_source; "
         "from crawler.run import crawl; "
         "crawl([load_source(sys.argv[1])], Path(sys.argv[2]), CrawlConfig(**json.loads(sys.argv[3])))")


def start_crawl(source: Path, out: Path) -> subprocess.Popen:
    config = {"min_text_chars": 200, **SLOW}
    return subprocess.Popen([sys.executable, "-c", CRAWL, str(source), str(out), json.dumps(config)],
                            stderr=subprocess.DEVNULL)


def wait_for_pages(state: Path, count: int) -> None:
    pages = state / "pages.jsonl"
    deadline = time.monotonic() + 60
    while not (pages.exists() and pages.read_text().count("\n") >= count):
        assert time.monotonic() < deadline, "the crawl did not get going"
        time.sleep(0.05)


def finish_and_check(source: Path, out: Path) -> None:
    stats = crawl([load_source(str(source))], out, crawl_config(**SLOW))
    urls = [d.meta["url"] for d in read_documents(out / "documents")]
    paths = sorted(url.rsplit("/", 1)[1] for url in urls)
    assert paths == sorted(["index.html"] + [f"p{i:03d}.html" for i in range(PAGES)])  # all, once each
    assert stats["documents_out"] == stats["pages_fetched"] == PAGES + 1
    assert sorted(warc_uris(out)) == sorted(urls)  # every page's response once, under the documents' URL


def test_resume_after_sigterm(tmp_path):
    site = chain_site(tmp_path / "site", PAGES)
    source = write_source(tmp_path, name="chain", serve=str(site), allow_private=True, max_pages=100,
                          max_depth=50, start_urls=["/index.html"])
    out, state = tmp_path / "out", tmp_path / "out.partial" / "state" / "chain"
    parent = start_crawl(source, out)
    wait_for_pages(state, 8)
    parent.send_signal(signal.SIGTERM)
    assert parent.wait(timeout=60) == -signal.SIGTERM
    assert not out.exists()
    assert (state / "jobdir").is_dir() and not (state / "open").exists()  # Scrapy saved its queue
    finish_and_check(source, out)
    assert all(uri.startswith("http://chain.localhost/") for uri in warc_uris(out))  # not the served port
    assert not (tmp_path / "out.partial").exists()


def test_resume_after_sigkill(tmp_path):
    server = HttpServer(chain_site(tmp_path / "site", PAGES))
    try:
        source = write_source(tmp_path, name="chain", start_urls=[f"{server.url}/index.html"],
                              allowed_domains=["127.0.0.1"], allow_private=True, max_pages=100, max_depth=50)
        out, state = tmp_path / "out", tmp_path / "out.partial" / "state" / "chain"
        parent = start_crawl(source, out)
        wait_for_pages(state, 8)
        parent.kill()  # the Scrapy child is killed with it (PR_SET_PDEATHSIG)
        parent.wait()
        time.sleep(0.5)
        assert (state / "open").exists()  # its JOBDIR cannot be trusted
        with open(state / "pages.jsonl", "a") as pages:  # as if killed in the middle of a line
            pages.write('{"url": "http://127.0.0.1/cut-sh')
        done = [json.loads(line)["url"] for line in (state / "pages.jsonl").read_text().splitlines()[:-1]]
        add_orphan_warc_record(tmp_path / "out.partial", done[0])
        add_orphan_warc_record(tmp_path / "out.partial", f"{server.url}/p{PAGES - 1:03d}.html")
        finish_and_check(source, out)
    finally:
        server.stop()


def warc_uris(out: Path) -> list[str]:
    uris = []
    for path in sorted((out / "warc").glob("*.warc.gz")):
        with open(path, "rb") as handle:
            uris += [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(handle)]
    return uris


def add_orphan_warc_record(partial: Path, url: str) -> None:
    """As if killed between writing a page's WARC record and its page line."""
    last = sorted((partial / "warc").glob("*.warc.gz"))[-1]
    with open(last, "ab") as handle:
        writer = WARCWriter(handle, gzip=True)
        writer.write_record(writer.create_warc_record(url, "response", payload=BytesIO(b"HTTP/1.1 200 OK\r\n\r\nx"),
                                                      warc_headers_dict={}))
