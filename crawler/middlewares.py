"""Downloader middlewares: the address guard's request side, robots.txt with Crawl-delay and
RFC 9309's rules for unavailable robots.txt, and Retry-After.

Every Scrapy crawler of a crawl is one source. The guard is the first downloader middleware, so
every request its crawler makes passes it before anything else sees it: the spider's (links,
start URLs, sitemaps and their entries), and those Scrapy's middlewares make (redirects, retries,
meta refreshes, robots.txt), whatever their `dont_filter`. It checks each against the scope and
`allow_private` of the source it descends from (crawler.addresses.SourceScope; the source's name
travels in `request.meta["source"]`), and counts each refusal by reason. A name's addresses are
judged where it is resolved (crawler.resolver); ResolverRefusalMiddleware names that refusal.
"""

from __future__ import annotations

import logging
from typing import Any

from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import CannotResolveHostError, IgnoreRequest
from scrapy.http import Request, Response
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.error import DNSLookupError

from crawler import addresses
from crawler.politeness import host_delays, retry_after_seconds
from crawler.urls import without_userinfo

logger = logging.getLogger(__name__)

SOURCE_META = "source"  # request.meta key: the name of the source a request descends from


class AddressRefused(IgnoreRequest):
    """The request is outside its source's scope, or its scheme or address is not on the public
    web (and the source did not allow it)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


class AddressGuardMiddleware:
    """Refuses, before anything is sent, a request outside its source's scope, with a non-http(s)
    scheme, or to an IP literal its source did not allow; or one that names another source."""

    def __init__(self, crawler: Any):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> "AddressGuardMiddleware":
        return cls(crawler)

    def process_request(self, request: Request) -> None:
        spider = self.crawler.spider
        # requests Scrapy's middlewares make from nothing (robots.txt) belong to this crawler's source
        source = request.meta.setdefault(SOURCE_META, spider.name)
        if source != spider.name:
            raise refused(self.crawler, request, "other_source", f"it descends from source {source!r}")
        scope = getattr(spider, "scope", addresses.SourceScope())  # no scope: nothing is in scope
        parts = urlparse_cached(request)
        try:
            port = parts.port
        except ValueError:
            raise refused(self.crawler, request, "out_of_scope", "its port is not a number") from None
        reason = scope.refusal(parts.scheme, parts.hostname or "", port)
        if reason is not None:
            raise refused(self.crawler, request, reason, why(reason, parts, source))
        return None


class CredentialsMiddleware:
    """A request whose URL carries credentials (a link or a redirect to http://user:password@host/)
    is made again without them: the crawler never authenticates, and Scrapy's client cannot
    connect to such a URL. The new request passes the guard again; its meta (source, redirects) is kept."""

    def process_request(self, request: Request) -> Request | None:
        if "@" in urlparse_cached(request).netloc:
            return request.replace(url=without_userinfo(request.url))
        return None


def why(reason: str, parts: Any, source: str) -> str:
    if reason == "scheme":
        return f"the scheme {parts.scheme!r} is not http(s)"
    if reason == "out_of_scope":
        return f"{parts.netloc} is outside the scope of source {source!r}"
    return f"{parts.hostname} is a {reason} address"


class ResolverRefusalMiddleware(AddressGuardMiddleware):
    """Names the refusal when a host resolved only to refused addresses (the connection then fails
    with a DNS lookup error); placed above RetryMiddleware so that such a request is not retried."""

    def process_request(self, request: Request) -> None:
        return None

    def process_exception(self, request: Request, exception: Exception) -> None:
        if isinstance(exception, (CannotResolveHostError, DNSLookupError)):
            host = urlparse_cached(request).hostname or ""
            reason = addresses.POLICY.refusal_of(host)
            if reason is not None:
                raise refused(self.crawler, request, reason, f"{host} resolves only to {reason} addresses")
        return None


def refused(crawler: Any, request: Request, reason: str, why: str) -> AddressRefused:
    """Count the refusal in the source's (its crawler's) stats; the exception to raise."""
    crawler.stats.inc_value(f"tokenmill/refused/{reason}")
    hint = "" if reason in ("out_of_scope", "other_source", "scheme") else " (set allow_private in the source to crawl it)"
    return AddressRefused(f"refused {request.url}: {why}{hint}", reason)


class RobotsUnavailable(IgnoreRequest):
    """robots.txt answered 5xx or could not be fetched: RFC 9309 says assume the host is disallowed."""


class DisallowAll:
    """The robots parser of a host whose robots.txt is unavailable."""

    def __init__(self, why: str):
        self.why = why

    def allowed(self, url: str, user_agent: Any) -> bool:
        return False


class PoliteRobotsMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, plus: Crawl-delay (a floor under the host's delay), a
    robots.txt answered 5xx or unreachable disallows the host (RFC 9309 §2.3.1.4), 4xx allows it.
    A robots.txt refused by the address guard leaves the decision to the guard (the page request
    is refused with its reason)."""

    async def _parse_robots(self, response: Response, netloc: str, request: Request) -> None:
        if response.status >= 500:
            self.unavailable(netloc, f"robots.txt answered {response.status}")
            return
        if 400 <= response.status < 500:
            response = response.replace(body=b"")  # no rules: everything allowed
        await super()._parse_robots(response, netloc, request)
        parser = self._parsers[netloc]
        delay = crawl_delay(parser, self._robotstxt_useragent or self._default_useragent)
        if delay:
            host_delays(self.crawler).set_floor(request, delay)
            self._stats.max_value("tokenmill/robots_crawl_delay", delay)

    def _robots_error(self, exc: Exception, netloc: str) -> None:
        if isinstance(exc, AddressRefused):
            super()._robots_error(exc, netloc)  # no parser: the guard refuses the page itself
            return
        self.unavailable(netloc, f"robots.txt unreachable ({type(exc).__name__})")

    def unavailable(self, netloc: str, why: str) -> None:
        logger.warning("%s: %s; the host is disallowed for this crawl (RFC 9309)", netloc, why)
        self._stats.inc_value("tokenmill/robots_unavailable_hosts")
        waiting = self._parsers[netloc]
        self._parsers[netloc] = DisallowAll(why)
        waiting.callback(self._parsers[netloc])

    def process_request_2(self, rp: Any, request: Request) -> None:
        if isinstance(rp, DisallowAll):
            self._stats.inc_value("robotstxt/forbidden")
            raise RobotsUnavailable(f"robots.txt unavailable: {rp.why}")
        super().process_request_2(rp, request)


def crawl_delay(parser: Any, user_agent: str) -> float | None:
    protego = getattr(parser, "rp", None)  # scrapy.robotstxt.ProtegoRobotParser keeps Protego's parser
    if protego is None or not hasattr(protego, "crawl_delay"):
        return None
    delay = protego.crawl_delay(user_agent)
    return float(delay) if delay else None


class RetryAfterMiddleware:
    """On 429 and 503: pause the host (its downloader slot, not the crawl) for Retry-After
    (seconds or an HTTP date, capped at crawl.retry_after_max_s); without one, back off
    exponentially from the host's delay. RetryMiddleware then retries the request, which waits
    in the host's queue until the pause ends."""

    STATUSES = (429, 503)

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.cap = crawler.settings.getfloat("TOKENMILL_RETRY_AFTER_MAX")

    @classmethod
    def from_crawler(cls, crawler: Any) -> "RetryAfterMiddleware":
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        delays = host_delays(self.crawler)
        if response.status not in self.STATUSES:
            delays.answered(request)
            return response
        seconds = retry_after_seconds(response.headers.get(b"Retry-After", b"").decode("latin-1"))
        pause = delays.pause(request, seconds, self.cap)
        self.crawler.stats.inc_value(f"tokenmill/retry_after/{response.status}")
        logger.info("%s answered %d: pausing %s for %.1f s", request.url, response.status,
                    urlparse_cached(request).hostname, pause)
        return response
