"""Stable URLs: the key a page is known by across crawls, resumes and ports. Neither the URLs a crawl
records nor those it requests carry credentials (`user:password@`); the query is kept."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urldefrag, urlsplit, urlunsplit

from w3lib.url import canonicalize_url


@lru_cache(maxsize=1 << 16)  # a page's links are mostly found again on other pages
def canonical(url: str) -> str:
    """The form two spellings of one page share (no fragment, sorted query, normalised escapes)."""
    return canonicalize_url(url)


def without_userinfo(url: str) -> str:
    """`url` without the credentials of its authority (`http://user:password@host/` -> `http://host/`);
    its path and query as they are. The crawler never authenticates, and records go into a corpus."""
    if "@" not in url:  # most URLs: no parsing
        return url
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def document_id(source: str, url: str) -> str:
    return f"{source}/{hashlib.sha256(canonical(url).encode('utf-8')).hexdigest()[:20]}"


@dataclass(frozen=True)
class UrlMap:
    """Maps fetched URLs to stable ones. A served directory is fetched at http://127.0.0.1:<port>,
    a port that changes from crawl to crawl; its pages are recorded at http://<source>.localhost
    (RFC 6761: a loopback name) so that crawls of an unchanged site give identical documents."""

    fetch_origin: str = ""  # e.g. "http://127.0.0.1:41234"; "" for a site on the web
    stable_origin: str = ""  # e.g. "http://debian-handbook.localhost"

    def stable(self, url: str) -> str:
        url = without_userinfo(urldefrag(url)[0])
        if self.fetch_origin and (url == self.fetch_origin or url.startswith(self.fetch_origin + "/")):
            return self.stable_origin + url[len(self.fetch_origin):]
        return url

    def fetchable(self, url: str) -> str:
        url = without_userinfo(url)
        if self.stable_origin and (url == self.stable_origin or url.startswith(self.stable_origin + "/")):
            return self.fetch_origin + url[len(self.stable_origin):]
        return url
