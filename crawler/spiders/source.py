"""One generic spider, driven by a Source: follows in-scope links breadth-first up to max_depth,
stops at max_pages, turns only HTML into pages with text."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Iterator
from urllib.parse import urlsplit

import scrapy
from scrapy.exceptions import CannotResolveHostError, CloseSpider, DownloadCancelledError, DownloadTimeoutError, IgnoreRequest
from scrapy.http import HtmlResponse, Request, Response, TextResponse
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet.error import DNSLookupError
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding
from twisted.python.failure import Failure

from crawler.config import Source
from crawler.analyse import Analyser, link_extractor, rules_of, warc_input
from crawler.items import IN_PROCESS, Page, counts_toward_budget
from crawler.addresses import DEFAULT_PORTS, SourceScope
from crawler.middlewares import SOURCE_META, AddressRefused, RobotsUnavailable
from crawler.state import carried_page, read_index, read_pages
from crawler.urls import UrlMap, canonical


class SourceSpider(scrapy.Spider):
    name = "source"

    def __init__(self, source: Source, urls: UrlMap, pages_file: Path, previous_file: Path | None = None,
                 **kwargs: Any):
        super().__init__(name=source.name, **kwargs)
        self.source = source
        self.urls = urls
        self.allowed_domains = list(source.allowed_domains)
        # domains are checked by host in in_scope (LinkExtractor's allow_domains compares host:port)
        # where every request may go, read by the address guard (crawler.middlewares)
        self.scope = scope_of(source, urls)
        self.rules = rules_of(source.allow, source.deny)  # crawler.analyse applies them to each page's links
        self.links = link_extractor(self.rules)
        self.analyser: Analyser | None = None  # made by from_crawler (its size is a setting)
        earlier = resume_point(read_pages(pages_file), source.max_depth)
        self.done: set[str] = earlier.done  # canonical stable URLs with a final outcome already
        # canonical stable URLs requested this run: a link found again makes no second request, which
        # Scrapy's seen-set would only drop after its trip through the middlewares and the scheduler
        self.requested: set[str] = set()
        self.frontier: list[tuple[str, int]] = earlier.frontier
        self.fetched = earlier.fetched  # pages fetched so far, earlier runs included
        self.transient_failures = 0  # failures this run that a resumed crawl must try again
        self.sitemap_pages = 0  # page requests taken from sitemaps this run
        self.sitemaps = 0  # sitemap requests taken from sitemap indexes this run (at most max_pages too)
        # an incremental recrawl: the previous crawl's pages with a document, by canonical URL
        self.previous = {canonical(r["url"]): r for r in read_index(previous_file) if r.get("text")} \
            if previous_file else {}

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "SourceSpider":
        spider = super().from_crawler(crawler, *args, **kwargs)
        # the workers start now: their imports overlap Scrapy's start-up
        spider.analyser = Analyser(crawler.settings.getint("TOKENMILL_EXTRACT_WORKERS"))
        return spider

    async def start(self) -> AsyncIterator[Request | Page]:
        async for item in self.revisit():
            yield item
        for url in self.source.sitemap_urls:
            yield Request(self.urls.fetchable(url), callback=self.parse_sitemap, errback=self.sitemap_failed, priority=1,
                          meta={SOURCE_META: self.name})
        for url in self.source.start_urls:
            if request := self.request(self.urls.fetchable(url), depth=0):
                yield request
        # after a hard kill the JOBDIR's queue is gone: what was found but not done is requeued
        # here; after a graceful stop Scrapy's seen-set filters these out as already queued
        for url, depth in self.frontier:
            if request := self.request(self.urls.fetchable(url), depth=depth):
                yield request

    async def revisit(self) -> AsyncIterator[Request | Page]:
        """A recrawl first deals with the pages it already has: those younger than recrawl_after are
        carried over as they are ("fresh"); the others are asked for again with their validators
        (If-None-Match / If-Modified-Since), so that an unchanged page costs a 304."""
        if not self.previous:
            return
        max_age, now = self.source.recrawl_after_s or 0.0, time.time()
        stale = []
        for key, record in sorted(self.previous.items(), key=lambda item: (item[1]["depth"], item[0])):
            if key in self.done:
                continue
            if now - (record.get("crawled_at") or 0) < max_age and self.fetched < self.source.max_pages:
                page = Page(**{**carried_fields(record), "recrawl": "fresh"})
                self.done.add(key)
                self.fetched += 1
                yield page
            else:
                stale.append(record)
        for record in stale:
            if request := self.request(self.urls.fetchable(record["url"]), depth=record["depth"]):
                yield request
        for key, record in self.previous.items():  # the links of the fresh pages lead on
            if key in self.done and record["depth"] < self.source.max_depth:
                for link in record["links"]:
                    if request := self.request(self.urls.fetchable(link), depth=record["depth"] + 1):
                        yield request

    def request(self, url: str, depth: int) -> Request | None:
        key = canonical(self.urls.stable(url))
        if key in self.done or key in self.requested or self.fetched >= self.source.max_pages:
            return None
        self.requested.add(key)
        request = Request(url, callback=self.parse, errback=self.failed, meta={"depth": depth, SOURCE_META: self.name})
        if (previous := self.previous.get(key)) is not None:
            if previous.get("etag"):
                request.headers["If-None-Match"] = previous["etag"]
            if previous.get("last_modified"):
                request.headers["If-Modified-Since"] = previous["last_modified"]
            request.meta["handle_httpstatus_list"] = [304]
        return request

    def follows(self, url: str) -> bool:
        """The source's allow/deny rules, as LinkExtractor applies them to links."""
        return self.links.matches(url)

    def in_scope(self, url: str) -> bool:
        """On an allowed domain or a subdomain of one (the rule of Scrapy's OffsiteMiddleware)."""
        host = (urlsplit(url).hostname or "").lower()
        return any(host == d or host.endswith("." + d) for d in self.allowed_domains)

    def spend_budget(self, page: Page) -> bool:
        """Count a fetched page against max_pages; False (and the page marked) when it is over."""
        if self.fetched >= self.source.max_pages:  # in flight when the budget ran out
            page.dropped = "max_pages"
            return False
        self.fetched += counts_toward_budget(page.record())
        return True

    async def parse(self, response: Response) -> AsyncIterator[Page | Request]:
        page = self.page(response.request, response.url, status=response.status, response=response)
        previous = self.previous.get(canonical(page.url)) if self.previous else None
        if response.status == 304 and previous is not None:
            page = Page(**{**carried_fields(previous), "recrawl": "not_modified", "crawled_at": page.crawled_at,
                           "depth": page.depth})
        if not self.spend_budget(page):
            yield page
            return
        if page.recrawl == "not_modified":
            yield page
            for request in self.follow(page):
                yield request
            return
        if self.previous:
            page.recrawl = "new" if previous is None else (
                "unchanged" if previous.get("content_sha256") == page.content_sha256 else "changed")
        if not isinstance(response, HtmlResponse):
            page.dropped = "not_html"
        else:
            # text, links and WARC record, parsed once, off the reactor's thread (crawler.analyse)
            wants_links = page.depth < self.source.max_depth and self.fetched < self.source.max_pages
            try:
                page.analysis = await self.analyser.run(response.body, page.url, response.url, response.encoding,
                                                        self.rules if wants_links else None, warc_input(page, response))
            except Exception as exc:  # a page the extractor cannot take: recorded with the reason, not lost
                self.logger.warning("%s: extraction failed (%s: %s)", page.url, type(exc).__name__, exc)
                page.dropped = "extract_error"
            else:
                if wants_links:
                    page.links = sorted({self.urls.stable(url) for url in page.analysis.links if self.in_scope(url)})
        yield page
        for request in self.follow(page):
            yield request

    def closed(self, reason: str) -> None:
        if self.analyser is not None:
            self.analyser.close()

    def follow(self, page: Page) -> Iterator[Request]:
        for link in page.links if page.depth < self.source.max_depth else ():
            if request := self.request(self.urls.fetchable(link), depth=page.depth + 1):
                yield request
        if self.fetched >= self.source.max_pages:
            raise CloseSpider("max_pages")

    def parse_sitemap(self, response: Response) -> Iterator[Request]:
        """URLs of a sitemap (pages at depth 0, like start URLs) or of a sitemap index (more sitemaps),
        within the page budget: a sitemap lists at most max_pages pages to request. An entry out of
        the source's scope is requested too, for the address guard to refuse and count."""
        body = response.body
        if body[:2] == b"\x1f\x8b":
            try:
                body = gunzip(body, max_size=self.settings.getint("DOWNLOAD_MAXSIZE"))
            except (OSError, ValueError):
                self.logger.warning("%s: not a readable gzipped sitemap", response.url)
                return
        try:
            sitemap = Sitemap(body)
        except (StopIteration, SyntaxError, ValueError):
            self.logger.warning("%s: not a sitemap", response.url)
            return
        kind = sitemap.type
        for entry in sitemap:
            url = self.urls.fetchable(entry.get("loc", "").strip())
            if ":" not in url or self.sitemap_pages >= self.source.max_pages:  # no scheme: not a URL
                continue
            if kind == "sitemapindex":
                if self.sitemaps >= self.source.max_pages:
                    continue
                self.sitemaps += 1
                yield Request(url, callback=self.parse_sitemap, errback=self.sitemap_failed, priority=1,
                              meta={"depth_reset": True, SOURCE_META: self.name})
            elif self.follows(url):
                if request := self.request(url, depth=0):
                    request.meta["depth_reset"] = True  # for Scrapy's DepthMiddleware: not a hop
                    self.sitemap_pages += 1
                    yield request

    def sitemap_failed(self, failure: Failure) -> Iterator[Page]:
        reason, final = failure_reason(failure)
        self.logger.warning("sitemap %s: %s", failure.request.url, reason)
        if isinstance(failure.value, AddressRefused):  # recorded, so that the source's stats count it
            yield self.page(failure.request, failure.request.url, dropped=reason, final=final,
                            refused=failure.value.reason)

    def failed(self, failure: Failure) -> Iterator[Page]:
        reason, final = failure_reason(failure)
        response = failure.value.response if isinstance(failure.value, HttpError) else None
        page = self.page(failure.request, failure.request.url, dropped=reason, final=final, response=response,
                         status=response.status if response is not None else None,
                         refused=failure.value.reason if isinstance(failure.value, AddressRefused) else None)
        if response is not None and not self.spend_budget(page):
            page.final = True  # over budget: nothing to try again
        elif not final:
            self.transient_failures += 1
        yield page
        if self.fetched >= self.source.max_pages:
            raise CloseSpider("max_pages")

    def page(self, request: Request, url: str, **fields: Any) -> Page:
        response = fields.get("response")
        facts = response_facts(response, snapshot=bool(self.urls.fetch_origin)) if response is not None else {}
        return Page(
            source=self.source.name,
            url=self.urls.stable(url),
            depth=request.meta.get("depth", 0),
            redirected_from=[self.urls.stable(u) for u in request.meta.get("redirect_urls", [])],
            bytes=len(response.body) if response is not None else 0,
            **facts,
            **fields,
        )


def carried_fields(record: dict[str, Any]) -> dict[str, Any]:
    """A previous crawl's page record as the fields of a Page of this crawl (its WARC record is
    the previous crawl's, see crawler.run.write_warc)."""
    return {k: v for k, v in carried_page(record).items() if k in Page.__dataclass_fields__ and k not in IN_PROCESS}


def response_facts(response: Response, snapshot: bool) -> dict[str, Any]:
    """What a document records about its response. `fetched_at` is the time of the fetch (UTC);
    for a served local copy (`snapshot`) it is the file's Last-Modified, the date of the copy,
    so that crawls of an unchanged copy give identical documents."""
    content_type = response.headers.get(b"Content-Type", b"").decode("latin-1").strip() or None
    fetched = datetime.now(timezone.utc)
    if snapshot and (modified := response.headers.get(b"Last-Modified")):
        try:
            fetched = parsedate_to_datetime(modified.decode("latin-1")).astimezone(timezone.utc)
        except (TypeError, ValueError):
            pass
    return {
        "fetched_at": fetched.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "content_type": content_type,
        "declared_charset": declared_charset(content_type, response.body),
        "detected_charset": detected_charset(response),
        "content_sha256": hashlib.sha256(response.body).hexdigest(),
        "etag": (response.headers.get(b"ETag") or b"").decode("latin-1") or None,
        "last_modified": (response.headers.get(b"Last-Modified") or b"").decode("latin-1") or None,
        "crawled_at": round(time.time(), 3),
    }


def declared_charset(content_type: str | None, body: bytes) -> str | None:
    """The charset the server or the page declares: Content-Type's, else <meta charset> (lower case)."""
    charset = http_content_type_encoding(content_type) if content_type else None
    if charset is None and content_type and "html" in content_type:
        charset = html_body_declared_encoding(body)
    return charset.lower() if charset else None


def detected_charset(response: Response) -> str | None:
    """The charset the body is really in: utf-8 when it decodes as UTF-8 (whatever was declared),
    else the one Scrapy decoded it with (declaration, BOM, or w3lib's detection); None for binary."""
    if not isinstance(response, TextResponse):
        return None
    try:
        response.body.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return response.encoding.lower() if response.encoding else None


# what a page refused by the address guard is dropped as (other refusals: "private_address")
SCOPE_REASONS = {"scheme": "scheme", "out_of_scope": "out_of_scope", "other_source": "out_of_scope"}


def scope_of(source: Source, urls: UrlMap) -> SourceScope:
    """A served source (fetched at http://127.0.0.1:<port>): that origin exactly; else its domains."""
    if urls.fetch_origin:
        origin = urlsplit(urls.fetch_origin)
        return SourceScope.served(origin.scheme, origin.hostname or "", origin.port or DEFAULT_PORTS[origin.scheme])
    return SourceScope.of_domains(source.allowed_domains, source.allow_private)


def failure_reason(failure: Failure) -> tuple[str, bool]:
    """Why a request gave no page, and whether that is final (False: a resume tries again)."""
    error = failure.value
    if isinstance(error, HttpError):
        status = error.response.status
        return f"http_{status}", status < 500 and status != 429
    if isinstance(error, AddressRefused):
        return SCOPE_REASONS.get(error.reason, "private_address"), True
    if isinstance(error, RobotsUnavailable):
        return "robots_unavailable", False
    if isinstance(error, (CannotResolveHostError, DNSLookupError)):
        return "dns_error", False
    if isinstance(error, IgnoreRequest):
        return ("robots" if "robots.txt" in str(error) else "ignored"), True
    if isinstance(error, DownloadCancelledError):  # the only cancel Scrapy does: DOWNLOAD_MAXSIZE
        return "too_large", True
    if isinstance(error, (DownloadTimeoutError, TimeoutError)):
        return "timeout", False
    return "network_error", False


@dataclass
class ResumePoint:
    done: set[str] = field(default_factory=set)  # canonical stable URLs with a final outcome
    frontier: list[tuple[str, int]] = field(default_factory=list)  # (stable URL, depth) still to do
    fetched: int = 0  # pages fetched


def resume_point(records: Iterable[dict[str, Any]], max_depth: int) -> ResumePoint:
    """Where earlier runs got to: what is done, and what was found on done pages but not yet done
    (shallowest first)."""
    point = ResumePoint()
    found: dict[str, int] = {}
    for record in records:
        if not record["final"]:
            continue
        point.fetched += counts_toward_budget(record)
        point.done.update(canonical(url) for url in [record["url"], *record["redirected_from"]])
        if record["depth"] < max_depth:
            for link in record["links"]:
                found[link] = min(found.get(link, record["depth"] + 1), record["depth"] + 1)
    point.frontier = sorted(((url, depth) for url, depth in found.items() if canonical(url) not in point.done),
                            key=lambda item: (item[1], item[0]))
    return point
