"""A crawl stopped part-way (SIGTERM, or SIGKILL) resumes, and every page ends up exactly once."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    paths = sorted(d.meta["url"].rsplit("/", 1)[1] for d in read_documents(out / "documents"))
    assert paths == sorted(["index.html"] + [f"p{i:03d}.html" for i in range(PAGES)])  # all, once each
    assert stats["documents_out"] == stats["pages_fetched"] == PAGES + 1


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
        finish_and_check(source, out)
    finally:
        server.stop()


def test_a_half_written_warc_record_is_cut_off(tmp_path):
    from io import BytesIO

    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    from crawler.state import truncate_partial_warc

    path = tmp_path / "x.warc.gz"
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for i in range(3):
            writer.write_record(writer.create_warc_record(f"http://x/{i}", "resource",
                                                          payload=BytesIO(b"body %d " % i * 500)))
    whole = path.stat().st_size
    truncate_partial_warc(path)
    assert path.stat().st_size == whole
    with open(path, "r+b") as handle:
        handle.truncate(whole - 20)
    truncate_partial_warc(path)
    with open(path, "rb") as handle:
        assert [r.rec_headers.get_header("WARC-Target-URI") for r in ArchiveIterator(handle)] == ["http://x/0",
                                                                                                 "http://x/1"]
