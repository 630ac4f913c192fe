"""What to crawl (a `Source`, one YAML file in sources/) and how (`CrawlConfig`, params.yaml `crawl:`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tokenmill.config import build, load_yaml
from tokenmill.errors import UserError

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass
class Source:
    """One site to crawl, read from sources/<name>.yaml."""

    name: str  # names the documents (`<name>/<hash>` ids) and the output files
    start_urls: list[str]  # absolute http(s) URLs; with `serve`, paths like /en-US/index.html
    max_pages: int  # stop after this many fetched pages
    max_depth: int  # follow links at most this many hops from a start URL (0: start URLs only)
    allowed_domains: list[str] = field(default_factory=list)  # hosts (and their subdomains) to stay on
    allow_private: bool = False  # allow loopback, private and link-local addresses (local sites)
    serve: str | None = None  # a local directory served on 127.0.0.1 for the crawl (needs allow_private)
    allow: list[str] = field(default_factory=list)  # follow only links matching one of these regexes
    deny: list[str] = field(default_factory=list)  # never follow links matching one of these regexes
    description: str = ""  # free text for people

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"name: {self.name!r} must be letters, digits, '.', '_' or '-'")
        if not self.start_urls:
            raise ValueError("start_urls: give at least one URL")
        if self.max_pages <= 0:
            raise ValueError(f"max_pages: must be > 0, got {self.max_pages}")
        if self.max_depth < 0:
            raise ValueError(f"max_depth: must be >= 0, got {self.max_depth}")
        for key in ("allow", "deny"):
            for pattern in getattr(self, key):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{key}: bad regex {pattern!r} ({exc})") from None
        if self.serve is not None:
            self._check_served()
        else:
            self._check_remote()

    def _check_served(self) -> None:
        if not self.allow_private:
            raise ValueError("serve: a served directory is on 127.0.0.1; set allow_private: true")
        for url in self.start_urls:
            if not url.startswith("/"):
                raise ValueError(f"start_urls: with serve, give paths like /index.html, got {url!r}")

    def _check_remote(self) -> None:
        for url in self.start_urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"start_urls: {url!r} is not an absolute http(s) URL")
        if not self.allowed_domains:
            raise ValueError("allowed_domains: required (the hosts to stay on) unless serve is set")


@dataclass
class CrawlConfig:
    """How to crawl: politeness, limits and output (params.yaml `crawl:`)."""

    sources: list[str] = field(default_factory=lambda: ["debian-handbook"])  # names in sources/
    user_agent: str = "tokenmill/0.1 (+https://github.com/tokenmill/tokenmill)"  # says who we are
    obey_robots: bool = True  # honour robots.txt
    concurrent_requests: int = 16  # requests in flight, all domains together
    concurrent_requests_per_domain: int = 8  # requests in flight per domain (lower it for real sites)
    download_delay: float = 0.0  # seconds between requests to one domain (raise it for real sites)
    autothrottle: bool = False  # adapt the delay to the server's latency (Scrapy AutoThrottle)
    retry_times: int = 2  # retries of a failed request (timeouts, 5xx)
    download_timeout: float = 30.0  # seconds before a request is abandoned
    max_response_bytes: int = 5 * 1024 * 1024  # larger responses are dropped ("too_large")
    shard_size: int = 10_000  # documents per output Parquet shard
    min_text_chars: int = 200  # pages with less extracted text are dropped ("too_short")
    progress_every: int = 50  # log a progress line every this many pages

    def __post_init__(self) -> None:
        positive = ("concurrent_requests", "concurrent_requests_per_domain", "download_timeout",
                    "max_response_bytes", "shard_size", "progress_every")
        for key in positive:
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("download_delay", "retry_times", "min_text_chars"):
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
