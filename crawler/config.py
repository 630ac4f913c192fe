"""What to crawl (a `Source`, one YAML file in sources/) and how (`CrawlConfig`, params.yaml `crawl:`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

from crawler.addresses import parse_allow_private
from tokenmill.config import build, load_yaml
from tokenmill.errors import UserError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
LANGUAGE_PATTERN = re.compile(r"[a-z]{2,3}")  # ISO 639-1/3 codes, as the prepare stage's language step uses
DURATION_PATTERN = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a duration like `7d`, `12h`, `30m`, `1s` (ValueError otherwise)."""
    match = DURATION_PATTERN.fullmatch(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 7d, 12h, 30m or 1s")
    return float(match.group(1)) * DURATION_UNITS[match.group(2)]


@dataclass
class Source:
    """One site to crawl, read from sources/<name>.yaml."""

    name: str  # names the documents (`<name>/<hash>` ids) and the output files
    # required unless `warc` is given (WEB_KEYS):
    start_urls: list[str] = field(default_factory=list)  # absolute http(s) URLs; with `serve`, paths like /en-US/index.html
    max_pages: int | None = None  # stop after this many fetched pages
    max_depth: int | None = None  # follow links at most this many hops from a start URL (0: start URLs only)
    # web archives to ingest instead of crawling (crawler/ingest.py): WARC/WET files, directories,
    # s3:// URLs or listings like warc.paths.gz; relative listed paths are joined to `warc_base_url`
    warc: list[str] = field(default_factory=list)
    warc_base_url: str | None = None
    allowed_domains: list[str] = field(default_factory=list)  # hosts (and their subdomains) to stay on
    # non-public addresses this source may reach: true (all), a list of addresses/networks
    # (e.g. [127.0.0.1, 10.1.0.0/16]) or false (public addresses only, the default)
    allow_private: bool | list[str] = False
    serve: str | None = None  # a local directory served on 127.0.0.1 for the crawl (needs allow_private)
    allow: list[str] = field(default_factory=list)  # follow only links matching one of these regexes
    deny: list[str] = field(default_factory=list)  # never follow links matching one of these regexes
    sitemap_urls: list[str] = field(default_factory=list)  # sitemaps / sitemap indexes to take URLs from
    languages: list[str] = field(default_factory=list)  # expected languages (ISO codes), on every document
    license: str | None = None  # the content's license (e.g. CC-BY-SA-4.0), on every document
    delay_s: float | None = None  # seconds between requests to one host (default: crawl.download_delay)
    concurrency: int | None = None  # requests in flight per host (default: crawl.concurrent_requests_per_domain)
    recrawl_after: str | None = None  # revalidate pages older than this (7d, 12h, 1s) when crawled again
    description: str = ""  # free text for people

    def __post_init__(self) -> None:
        for problem in self.problems():
            raise ValueError(problem)

    @property
    def recrawl_after_s(self) -> float | None:
        return None if self.recrawl_after is None else parse_duration(self.recrawl_after)

    def problems(self) -> Iterator[str]:
        """Every problem of a well-typed source, each as 'key: what is wrong'."""
        if not NAME_PATTERN.fullmatch(self.name):
            yield f"name: {self.name!r} must be letters, digits, '.', '_' or '-'"
        if self.warc:
            yield from self._archive_problems()
            return
        for key in missing_web_keys(self.__dict__):
            yield f"missing required key '{key}' (or name web archives to ingest: warc: [PATHS])"
        if self.max_pages is not None and self.max_pages <= 0:
            yield f"max_pages: must be > 0, got {self.max_pages}"
        if self.max_depth is not None and self.max_depth < 0:
            yield f"max_depth: must be >= 0, got {self.max_depth}"
        try:
            parse_allow_private(self.allow_private)
        except ValueError as exc:
            yield str(exc)
        for code in self.languages:
            if not LANGUAGE_PATTERN.fullmatch(code):
                yield f"languages: {code!r} is not a lower-case ISO 639 code like en, fa or pl"
        if self.delay_s is not None and self.delay_s < 0:
            yield f"delay_s: must be >= 0, got {self.delay_s}"
        if self.concurrency is not None and self.concurrency < 1:
            yield f"concurrency: must be >= 1, got {self.concurrency}"
        if self.recrawl_after is not None:
            try:
                parse_duration(self.recrawl_after)
            except ValueError as exc:
                yield f"recrawl_after: {exc}"
        for key in ("allow", "deny"):
            for pattern in getattr(self, key):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    yield f"{key}: bad regex {pattern!r} ({exc})"
        yield from (self._served_problems() if self.serve is not None else self._remote_problems())

    def _archive_problems(self) -> Iterator[str]:
        crawling = [key for key in ("start_urls", "sitemap_urls", "serve") if getattr(self, key)]
        if crawling:
            yield f"warc: a source either ingests archives or crawls; remove {', '.join(crawling)} or warc"
        for code in self.languages:
            if not LANGUAGE_PATTERN.fullmatch(code):
                yield f"languages: {code!r} is not a lower-case ISO 639 code like en, fa or pl"

    def _served_problems(self) -> Iterator[str]:
        if not self.allow_private:
            yield "serve: a served directory is on 127.0.0.1; set allow_private: true"
        for key in ("start_urls", "sitemap_urls"):
            for url in getattr(self, key):
                if not url.startswith("/"):
                    yield f"{key}: with serve, give paths like /index.html, got {url!r}"

    def _remote_problems(self) -> Iterator[str]:
        for key in ("start_urls", "sitemap_urls"):
            for url in getattr(self, key):
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    yield f"{key}: {url!r} is not an absolute http(s) URL"
        if not self.allowed_domains:
            yield "allowed_domains: required (the hosts to stay on) unless serve is set"


WEB_KEYS = ("start_urls", "max_pages", "max_depth")  # required of a source that crawls (no `warc`)


def missing_web_keys(values: dict) -> list[str]:
    """The WEB_KEYS a source without `warc` lacks (values: its keys as given, or its fields)."""
    if values.get("warc"):
        return []
    return [key for key in WEB_KEYS if values.get(key) is None or values.get(key) == []]


@dataclass
class CrawlConfig:
    """How to crawl: politeness, limits and output (params.yaml `crawl:`)."""

    sources: list[str] = field(default_factory=lambda: ["debian-handbook"])  # names in sources/
    user_agent: str = "tokenmill/0.1 (+https://github.com/tokenmill/tokenmill)"  # says who we are
    obey_robots: bool = True  # honour robots.txt
    concurrent_requests: int = 16  # requests in flight, all domains together
    concurrent_requests_per_domain: int = 1  # requests in flight per host (a source's `concurrency` wins)
    download_delay: float = 1.0  # seconds between requests to one host (a source's `delay_s` wins)
    autothrottle: bool = True  # raise the delay when the server slows down (never under the delay above)
    retry_times: int = 2  # retries of a failed request (timeouts, 5xx, 429)
    retry_after_max_s: float = 300.0  # longest pause a Retry-After (or backoff) may impose on a host
    download_timeout: float = 30.0  # seconds before a request is abandoned
    max_response_bytes: int = 5 * 1024 * 1024  # larger responses are dropped ("too_large")
    shard_size: int = 10_000  # documents per output Parquet shard
    min_text_chars: int = 200  # pages with less extracted text are dropped ("too_short")
    extract_workers: int = 2  # processes parsing pages beside the crawl (0: in its event loop)
    progress_every_s: float = 10.0  # seconds between progress lines (pages, rate, ETA to max_pages)

    def __post_init__(self) -> None:
        positive = ("concurrent_requests", "concurrent_requests_per_domain", "download_timeout",
                    "max_response_bytes", "shard_size", "progress_every_s")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("download_delay", "retry_times", "min_text_chars", "retry_after_max_s", "extract_workers"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if not self.user_agent.strip():
            raise ValueError("user_agent: must say who is crawling")


def available_sources(sources_dir: Path) -> list[str]:
    return sorted(p.stem for p in Path(sources_dir).glob("*.yaml"))


def load_source(name_or_path: str, sources_dir: Path = Path("sources")) -> Source:
    """A source by name (sources_dir/<name>.yaml) or by the path of its YAML file."""
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        path = Path(text)
    else:
        path = Path(sources_dir) / f"{text}.yaml"
        if not path.is_file():
            known = ", ".join(available_sources(sources_dir)) or "none"
            raise UserError(f"unknown source '{text}' (no {path}; available: {known})")
    return build(Source, load_yaml(path), where=str(path))
