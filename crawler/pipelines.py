"""Item pipelines, in order: extract the text, keep the raw response in WARC, record the page.

A page is recorded (pages.jsonl, flushed per line) only after its response is in the WARC file,
and the record says where (file, offset, length). A page the crawl state calls done is never
missing from the archive; a WARC record written just before a kill, without its page line, is
an orphan that the final WARC leaves out (crawler.run.write_warc), so the two always agree.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from crawler.analyse import warc_input, warc_record
from crawler.items import Page, counts_toward_budget
from tokenmill.progress import progress

logger = logging.getLogger(__name__)


class ExtractPipeline:
    """Main text, title and lang of HTML pages; pages with too little text are dropped.

    The extraction itself (trafilatura, CPU-bound) ran off the reactor's thread while the spider
    waited for the page's links (crawler.analyse, in `crawl.extract_workers` processes); this puts
    its outcome on the page. The order in which pages finish does not matter: the crawl's outputs
    are sorted by URL."""

    def __init__(self, min_text_chars: int):
        self.min_text_chars = min_text_chars

    @classmethod
    def from_crawler(cls, crawler: Any) -> "ExtractPipeline":
        return cls(crawler.settings.getint("TOKENMILL_MIN_TEXT_CHARS"))

    def process_item(self, page: Page) -> Page:
        if page.dropped is not None or page.analysis is None:
            return page
        extracted = page.analysis.extracted
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
    """Every response the spider saw, as a gzipped WARC response record (one file per run): built
    off the reactor's thread with the page's analysis, else (error pages, non-HTML) here."""

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.handle: Any = None

    @classmethod
    def from_crawler(cls, crawler: Any) -> "WarcPipeline":
        return cls(crawler)

    def open_spider(self) -> None:
        self.path = Path(self.crawler.settings.get("TOKENMILL_WARC_FILE"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "ab")

    def close_spider(self) -> None:
        if self.handle is not None:
            self.handle.close()

    def process_item(self, page: Page) -> Page:
        response = page.response
        if response is None or self.handle is None or page.dropped == "max_pages":
            return page
        record = page.analysis.warc_record if page.analysis is not None else None
        if record is None:
            record = warc_record(warc_input(page, response))
        offset = self.handle.tell()
        self.handle.write(record)
        self.handle.flush()
        page.warc = {"file": self.path.name, "offset": offset, "length": len(record)}
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
        page.response = page.analysis = None  # the body is on disk now; let it go
        return page

