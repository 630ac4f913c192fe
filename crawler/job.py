"""The Scrapy side of a crawl: `python -m crawler.job <out>.partial <parent pid>`.

Run by crawler.run.crawl in a child process, because Twisted's reactor cannot be restarted within
one process. Reads job.json, runs one crawler per source, and records how each one stopped.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.crawler import AsyncCrawlerProcess, Crawler

from crawler.config import CrawlConfig, Source
from crawler.settings import project_settings, scrapy_settings
from crawler.spiders.source import SourceSpider
from crawler.state import COMPLETE, CrawlState
from crawler.urls import UrlMap
from tokenmill.config import build

def die_with_parent(parent: int) -> None:
    """If the parent is killed outright, go too (it served the site and will resume the crawl)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: an orphan finishes its crawl alone
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        sys.exit(1)


def add_crawler(process: AsyncCrawlerProcess, state: CrawlState, config: CrawlConfig,
                entry: dict[str, Any]) -> None:
    source = build(Source, entry["source"], where=str(state.job_file))
    name = source.name
    settings = scrapy_settings(config, source, jobdir=state.jobdir(name), pages_file=state.pages_file(name),
                               warc_file=state.next_warc(name))
    crawler = Crawler(SourceSpider, settings)

    def closed(spider: SourceSpider, reason: str) -> None:
        state.closed_file(name).write_text(json.dumps({"reason": reason}) + "\n", encoding="utf-8")
        # Scrapy saved its queue, but requests that failed while stopping are in its seen-set
        # without a result: then the next run must rebuild the frontier instead
        if reason in COMPLETE or spider.transient_failures == 0:
            state.open_marker(name).unlink(missing_ok=True)

    crawler.signals.connect(closed, signal=signals.spider_closed, weak=False)
    state.open_marker(name).touch()
    process.crawl(crawler, source=source, urls=UrlMap(**entry["urls"]), pages_file=state.pages_file(name))


def main(argv: list[str]) -> int:
    state, parent = CrawlState(Path(argv[0])), int(argv[1])
    die_with_parent(parent)
    job = json.loads(state.job_file.read_text(encoding="utf-8"))
    config = build(CrawlConfig, job["config"], where=str(state.job_file))
    process = AsyncCrawlerProcess(project_settings())
    for entry in job["sources"]:
        add_crawler(process, state, config, entry)
    process.start()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
