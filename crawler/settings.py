"""Scrapy settings: the fixed project settings below, plus per-crawl values from CrawlConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crawler.config import CrawlConfig, Source

BOT_NAME = "tokenmill"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

DOWNLOADER_MIDDLEWARES = {
    # after OffsiteMiddleware (50), before RobotsTxtMiddleware (100): a refused host is never
    # contacted, not even for its robots.txt
    "crawler.middlewares.PrivateAddressMiddleware": 60,
}
ITEM_PIPELINES = {
    "crawler.pipelines.ExtractPipeline": 100,
    "crawler.pipelines.WarcPipeline": 200,
    "crawler.pipelines.RecordPipeline": 300,
}

# breadth-first, so a page is reached at its shortest depth and max_depth cuts where one expects
DEPTH_PRIORITY = 1
SCHEDULER_DISK_QUEUE = "scrapy.squeues.PickleFifoDiskQueue"
SCHEDULER_MEMORY_QUEUE = "scrapy.squeues.FifoMemoryQueue"

RETRY_ENABLED = True
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False  # no consoles or control servers listening on the machine
REMOTE_CONTROL_ENABLED = False
LOG_LEVEL = "INFO"
LOGSTATS_INTERVAL = 15.0


def project_settings() -> dict[str, Any]:
    return {name: value for name, value in globals().items() if name.isupper()}


def scrapy_settings(config: CrawlConfig, source: Source, jobdir: Path, pages_file: Path,
                    warc_file: Path) -> dict[str, Any]:
    """All the settings of one source's crawler."""
    return {
        **project_settings(),
        "USER_AGENT": config.user_agent,
        "ROBOTSTXT_OBEY": config.obey_robots,
        "CONCURRENT_REQUESTS": config.concurrent_requests,
        "CONCURRENT_REQUESTS_PER_DOMAIN": config.concurrent_requests_per_domain,
        "DOWNLOAD_DELAY": config.download_delay,
        "AUTOTHROTTLE_ENABLED": config.autothrottle,
        "RETRY_TIMES": config.retry_times,
        "DOWNLOAD_TIMEOUT": config.download_timeout,
        "DOWNLOAD_MAXSIZE": config.max_response_bytes,
        "DOWNLOAD_WARNSIZE": 0,
        # the spider itself follows no links from pages at max_depth; this is the backstop
        # (for max_depth 0 it is 0, which Scrapy reads as "no limit")
        "DEPTH_LIMIT": source.max_depth,
        "JOBDIR": str(jobdir),
        "TOKENMILL_MIN_TEXT_CHARS": config.min_text_chars,
        "TOKENMILL_PROGRESS_EVERY": config.progress_every,
        "TOKENMILL_PAGES_FILE": str(pages_file),
        "TOKENMILL_WARC_FILE": str(warc_file),
    }
