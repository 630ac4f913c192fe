"""What the spider yields for every URL it tried: a fetched page, or why there is none."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the crawl's parent process (crawler.run) imports this module, and need not load Scrapy
    from scrapy.http import Response


@dataclass
class Page:
    source: str  # the source's name
    url: str  # the page's stable URL (a served site's ephemeral port replaced, see spiders/source.py)
    depth: int  # hops from a start URL when it was requested
    status: int | None = None  # HTTP status; None when nothing was fetched
    dropped: str | None = None  # why no document came of it (robots, not_html, too_short, ...)
    # refused by the address guard: why (out_of_scope, scheme, or the address class: loopback, ...)
    refused: str | None = None
    final: bool = True  # False for transient failures, which a resumed crawl tries again
    redirected_from: list[str] = field(default_factory=list)  # stable URLs that led here
    links: list[str] = field(default_factory=list)  # in-scope stable URLs found on the page
    bytes: int = 0  # size of the response body
    fetched_at: str | None = None  # ISO 8601 UTC (see spiders.source.response_facts)
    content_type: str | None = None  # the Content-Type header
    declared_charset: str | None = None  # charset of the Content-Type header, else of <meta>
    detected_charset: str | None = None  # charset the body decodes with
    content_sha256: str | None = None  # of the response body as received (decoded transfer encoding)
    etag: str | None = None  # validators, for a later conditional recrawl
    last_modified: str | None = None
    crawled_at: float | None = None  # Unix time of the fetch (what recrawl_after is measured from)
    recrawl: str | None = None  # in a recrawl: fresh, not_modified, unchanged, changed or new
    warc: dict[str, Any] | None = None  # where its response record is: {"file", "offset", "length"}
    text: str | None = None
    title: str | None = None
    lang: str | None = None  # the page's HTML lang attribute
    response: Response | None = field(default=None, repr=False)  # in-process only: for WARC + text
    # in-process only: what crawler.analyse worked out off the reactor's thread (text, WARC record)
    analysis: Any = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """The JSON-ready form kept in the crawl's state (everything but the response)."""
        return {k: v for k, v in self.__dict__.items() if k not in IN_PROCESS}


IN_PROCESS = {"response", "analysis"}


def counts_toward_budget(record: dict[str, Any]) -> bool:
    """Whether a page record used up one of the source's max_pages: it was fetched (any HTTP
    status) and not turned away because the budget had run out. The live crawl, a resumed one and
    the stats all count with this."""
    return record["status"] is not None and record["dropped"] != "max_pages"
