"""The Scrapy side of a crawl: `python -m crawler.job <out>.partial <parent pid>`.

Run by crawler.run.crawl in a child process, because Twisted's reactor cannot be restarted within
one process. Reads job.json, runs one crawler per source, and records how each one stopped.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.crawler import AsyncCrawlerProcess, Crawler

from crawler import addresses
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
    previous = state.previous_pages(name)
    process.crawl(crawler, source=source, urls=UrlMap(**entry["urls"]), pages_file=state.pages_file(name),
                  previous_file=previous if previous.exists() else None)


# Scrapy's start-up and shutdown dumps (settings, versions, enabled components, the stats mapping):
# ~90 lines per crawl that say nothing the crawl's stats.json and job.json do not
QUIET_LOGGERS = ("scrapy.middleware", "scrapy.addons", "scrapy.statscollectors")
DUMPS = ("Overridden settings", "Versions", "Enabled addons", "Scrapy %(version)s started")


class NoDumps(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(DUMPS)


class NoTraceback(logging.Filter):
    """A robots.txt that cannot be fetched is an outcome (crawler.middlewares says what follows),
    not a crash: its one line stays, the traceback goes."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = record.exc_text = None
        return True


def quiet_scrapy_dumps() -> None:
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("scrapy.crawler", "scrapy.utils.log"):
        if not any(isinstance(f, NoDumps) for f in logging.getLogger(name).filters):
            logging.getLogger(name).addFilter(NoDumps())
    robots = logging.getLogger("scrapy.downloadermiddlewares.robotstxt")
    if not any(isinstance(f, NoTraceback) for f in robots.filters):
        robots.addFilter(NoTraceback())


def source_hosts(source: Source) -> set[str]:
    """The hosts a source's allow_private applies to: its domains and its URLs' hosts."""
    hosts = {d.lower() for d in source.allowed_domains}
    return hosts | {(urlsplit(url).hostname or "") for url in [*source.start_urls, *source.sitemap_urls]} - {""}


def main(argv: list[str]) -> int:
    state, parent = CrawlState(Path(argv[0])), int(argv[1])
    die_with_parent(parent)
    job = json.loads(state.job_file.read_text(encoding="utf-8"))
    config = build(CrawlConfig, job["config"], where=str(state.job_file))
    sources = [build(Source, entry["source"], where=str(state.job_file)) for entry in job["sources"]]
    # one resolver serves the whole process: it learns every source's hosts and allowance first
    addresses.POLICY.use(addresses.AddressPolicy.from_sources(
        (source_hosts(source), source.allow_private) for source in sources))
    quiet_scrapy_dumps()
    process = AsyncCrawlerProcess(project_settings())
    quiet_scrapy_dumps()  # again: the process's logging set-up resets the levels of Scrapy's loggers
    for entry in job["sources"]:
        add_crawler(process, state, config, entry)
    process.start()
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # all is written and closed: skip the interpreter's teardown of Scrapy, Twisted and the rest
    # (the extraction workers, already told to stop, go with this process: crawler.analyse.die_with_crawl)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
