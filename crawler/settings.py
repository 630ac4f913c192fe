"""Scrapy settings: the fixed project settings below, plus per-crawl values from CrawlConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawler.config import CrawlConfig, Source

BOT_NAME = "tokenmill"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

DOWNLOADER_MIDDLEWARES = {
    # first of all: every request, whatever made it and whatever its dont_filter, is checked against
    # its source's scope and allow_private before any other middleware sees it (a refused one is
    # never contacted, not even for its robots.txt); it also does OffsiteMiddleware's job, counted
    "crawler.middlewares.AddressGuardMiddleware": 0,
    "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
    "crawler.middlewares.CredentialsMiddleware": 1,
    # exceptions reach it before RetryMiddleware (550): a resolver refusal is final, not retried
    "crawler.middlewares.ResolverRefusalMiddleware": 580,
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "crawler.middlewares.PoliteRobotsMiddleware": 100,
    # responses pass it before RetryMiddleware (550) retries a 429/503
    "crawler.middlewares.RetryAfterMiddleware": 560,
}
EXTENSIONS = {
    "scrapy.extensions.throttle.AutoThrottle": None,
    "crawler.politeness.PoliteThrottle": 0,
}
# every connection goes to an address the guard allowed (crawler/resolver.py)
TWISTED_DNS_RESOLVER = "crawler.resolver.GuardedResolver"
# http(s) only: no file://, ftp://, s3:// or data: downloads, whatever a page links to
DOWNLOAD_HANDLERS = {"file": None, "ftp": None, "s3": None, "data": None}
# a host's delay is a minimum, not an average
DOWNLOAD_DELAY_JITTER = 0.0
# feed the hosts with the fewest requests in flight first: a paused host does not stall the others
SCHEDULER_PRIORITY_QUEUE = "scrapy.pqueues.DownloaderAwarePriorityQueue"
ITEM_PIPELINES = {
    "crawler.pipelines.ExtractPipeline": 100,
    "crawler.pipelines.WarcPipeline": 200,
    "crawler.pipelines.RecordPipeline": 300,
}

# breadth-first, so a page is reached at its shortest depth and max_depth cuts where one expects
DEPTH_PRIORITY = 1
# Scrapy's PickleFifoDiskQueue files, written on a graceful stop rather than per request (crawler/queues.py)
SCHEDULER_DISK_QUEUE = "crawler.queues.BufferedPickleFifoDiskQueue"
SCHEDULER_START_DISK_QUEUE = "crawler.queues.BufferedPickleFifoDiskQueue"
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"

# a response gives one page and its links' requests: Scrapy starts this many asyncio tasks per
# response to take them through the pipelines (its default, 100, cost more than the rest of a page)
CONCURRENT_ITEMS = 8

RETRY_ENABLED = True
COOKIES_ENABLED = False
# no proxy from http_proxy/https_proxy: through a proxy the address connected to is the proxy's, and
# the address guard (crawler/resolver.py) could no longer judge the page's own address
HTTPPROXY_ENABLED = False
TELNETCONSOLE_ENABLED = False  # no consoles or control servers listening on the machine
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"  # parsed by crawler.run.forward_log
LOGSTATS_INTERVAL = 15.0


def project_settings() -> dict[str, Any]:
    return {name: value for name, value in globals().items() if name.isupper()}


def scrapy_settings(config: CrawlConfig, source: Source, jobdir: Path, pages_file: Path,
                    warc_file: Path) -> dict[str, Any]:
    """All the settings of one source's crawler."""
    delay = source.delay_s if source.delay_s is not None else config.download_delay
    concurrency = source.concurrency if source.concurrency is not None else config.concurrent_requests_per_domain
    return {
        **project_settings(),
        "USER_AGENT": config.user_agent,
        "ROBOTSTXT_OBEY": config.obey_robots,
        "CONCURRENT_REQUESTS": config.concurrent_requests,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "DOWNLOAD_DELAY": delay,
        # AutoThrottle raises the delay when the server slows down, from and never under `delay`;
        # a source that asks for no delay (a local copy) gets none
        "AUTOTHROTTLE_ENABLED": config.autothrottle and delay > 0,
        "AUTOTHROTTLE_START_DELAY": delay,
        "AUTOTHROTTLE_TARGET_CONCURRENCY": float(concurrency),
        "TOKENMILL_RETRY_AFTER_MAX": config.retry_after_max_s,
        "RETRY_TIMES": config.retry_times,
        "DOWNLOAD_TIMEOUT": config.download_timeout,
        "DOWNLOAD_MAXSIZE": config.max_response_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        # the spider itself follows no links from pages at max_depth; this is the backstop
        # (for max_depth 0 it is 0, which Scrapy reads as "no limit")
        "DEPTH_LIMIT": source.max_depth,
        "JOBDIR": str(jobdir),
        "TOKENMILL_MIN_TEXT_CHARS": config.min_text_chars,
        "TOKENMILL_EXTRACT_WORKERS": config.extract_workers,
        "TOKENMILL_PROGRESS_EVERY_S": config.progress_every_s,
        "TOKENMILL_PAGES_FILE": str(pages_file),
        "TOKENMILL_WARC_FILE": str(warc_file),
    }
