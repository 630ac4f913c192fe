"""Item pipelines, in order: extract the text, keep the raw response in WARC, record the page.

A page is recorded (pages.jsonl, flushed per line) only after its response is in the WARC file,
and the record says where (file, offset, length). A page the crawl state calls done is never
missing from the archive; a WARC record written just before a kill, without its page line, is
an orphan that the final WARC leaves out (crawler.run.write_warc), so the two always agree.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from http import HTTPStatus
from io import BytesIO
from pathlib import Path
from typing import Any

from scrapy.http import TextResponse
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.extract import extract_page
from crawler.items import Page, counts_toward_budget
from tokenmill.progress import progress

logger = logging.getLogger(__name__)

# headers that described the bytes on the wire, not the (decoded) body we store
WIRE_HEADERS = {b"content-encoding", b"transfer-encoding", b"content-length"}


class ExtractPipeline:
    """Main text, title and lang of HTML pages; pages with too little text are dropped.

    Extraction (trafilatura, CPU-bound) runs in a pool of `crawl.extract_workers` processes, so
    that the reactor goes on downloading meanwhile; 0 runs it in the reactor's thread. The order in
    which pages finish does not matter: the crawl's outputs are sorted by URL."""

    def __init__(self, min_text_chars: int, workers: int):
        self.min_text_chars = min_text_chars
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "ExtractPipeline":
        return cls(crawler.settings.getint("TOKENMILL_MIN_TEXT_CHARS"), crawler.settings.getint("TOKENMILL_EXTRACT_WORKERS"))

    def open_spider(self) -> None:
        if self.workers > 0:
            # spawn, not fork: the crawl process has threads (Twisted's pool) that a fork would copy mid-work
            self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))

    def close_spider(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    async def process_item(self, page: Page) -> Page:
        if page.dropped is not None or not isinstance(page.response, TextResponse):
            return page
        if self.pool is not None:
            extracted = await asyncio.wrap_future(self.pool.submit(extract_page, page.response.text, page.url))
        else:
            extracted = extract_page(page.response.text, url=page.url)
        if extracted is None:
            page.dropped = "not_html"
            return page
        page.title, page.lang = extracted.title, extracted.lang
        if len(extracted.text) < self.min_text_chars:
            page.dropped = "too_short"
        else:
            page.text = extracted.text
        return page


class WarcPipeline:
    """Every response the spider saw, as a gzipped WARC response record (one file per run)."""

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.handle: Any = None
        self.writer: WARCWriter | None = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "WarcPipeline":
        return cls(crawler)

    def open_spider(self) -> None:
        self.path = Path(self.crawler.settings.get("TOKENMILL_WARC_FILE"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "ab")
        self.writer = WARCWriter(self.handle, gzip=True)

    def close_spider(self) -> None:
        if self.handle is not None:
            self.handle.close()

    def process_item(self, page: Page) -> Page:
        response = page.response
        if response is None or self.writer is None or page.dropped == "max_pages":
            return page
        headers = [(k.decode("latin-1"), v.decode("latin-1"))
                   for k, values in response.headers.items() if k.lower() not in WIRE_HEADERS for v in values]
        headers.append(("Content-Length", str(len(response.body))))
        status = StatusAndHeaders(f"{response.status} {http_reason(response.status)}", headers, protocol="HTTP/1.1")
        # the page's stable URL, as in the documents (a served site's ephemeral port replaced)
        record = self.writer.create_warc_record(page.url, "response", payload=BytesIO(response.body),
                                                http_headers=status)
        offset = self.handle.tell()
        self.writer.write_record(record)
        self.handle.flush()
        page.warc = {"file": self.path.name, "offset": offset, "length": self.handle.tell() - offset}
        return page


class RecordPipeline:
    """Appends each page to the crawl state (pages.jsonl), flushed at once, and shows progress."""

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.handle: Any = None
        self.pages = self.documents = 0
        self.bar: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "RecordPipeline":
        return cls(crawler)

    def open_spider(self) -> None:
        self.handle = open(self.crawler.settings.get("TOKENMILL_PAGES_FILE"), "a", encoding="utf-8")
        spider = self.crawler.spider
        # the crawl process's output is a pipe: plain periodic lines (count, rate, ETA), not a redrawn bar
        self.bar = progress(total=spider.source.max_pages, desc=f"crawl {spider.name}", unit="pages",
                            every_s=self.crawler.settings.getfloat("TOKENMILL_PROGRESS_EVERY_S"))

    def close_spider(self) -> None:
        if self.handle is not None:
            self.handle.close()
        if self.bar is not None:
            self.bar.close()
        logger.info("%s: %d pages this run, %d documents", self.crawler.spider.name, self.pages, self.documents)

    def process_item(self, page: Page) -> Page:
        self.handle.write(json.dumps(page.record(), ensure_ascii=False, sort_keys=True) + "\n")
        self.handle.flush()
        self.pages += 1
        self.documents += page.text is not None
        self.bar.set_postfix(documents=self.documents)
        self.bar.update(int(counts_toward_budget(page.record())))  # pages against max_pages
        page.response = None  # the body is on disk now; let it go
        return page


def http_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
