"""The CPU-bound work on a fetched HTML page, done off the reactor's thread.

One call per page, in a pool of `crawl.extract_workers` processes (0: in the reactor's thread):
the page is parsed once, and that tree gives the main text, title and lang (crawler.extract) and
the page's links (the rules of Scrapy's LinkExtractor); its gzipped WARC response record is built
there too. The reactor only downloads, schedules and writes what comes back.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from io import BytesIO
from typing import Any
from urllib.parse import urljoin

from lxml.html import HtmlElement
from scrapy.linkextractors import LinkExtractor
from scrapy.link import Link
from scrapy.utils.misc import arg_to_iter
from scrapy.utils.python import unique as unique_list
from trafilatura.utils import load_html
from w3lib.encoding import html_to_unicode
from w3lib.html import get_base_url, strip_html5_whitespace
from w3lib.url import safe_url_string
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from crawler.extract import Extracted, extract_tree

logger = logging.getLogger(__name__)

# zlib's fastest level. On the benchmark's 181 real pages (31 MB of HTML), per page and of the HTML's
# size: level 1 0.93 ms, 23.0%; 3 1.11 ms, 21.7%; 4 1.36 ms, 20.3%; 6 (gzip's default) 2.29 ms,
# 19.3%; 9 3.68 ms, 19.2%. The crawl is bound by CPU (the records are built in the extraction
# workers, beside trafilatura's ~9 ms a page), its archive is written once and seldom read: 1.4 ms
# less a page is worth a WARC 19% larger than level 6 (each record is its own gzip member: any
# reader takes it)
WARC_GZIP_LEVEL = 1

Rules = tuple[tuple[str, ...], tuple[str, ...]]  # a source's allow and deny patterns


@dataclass
class WarcInput:
    url: str  # the page's stable URL
    status_line: str  # e.g. "200 OK"
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Analysis:
    extracted: Extracted | None  # None: not an HTML document
    links: list[str] | None  # absolute URLs that the source's rules let through (None: not asked)
    warc_record: bytes | None  # one gzip member: the WARC response record


# headers that described the bytes on the wire, not the (decoded) body we store
WIRE_HEADERS = {b"content-encoding", b"transfer-encoding", b"content-length"}


def warc_input(page: Any, response: Any) -> WarcInput:
    """What the WARC record of a page's response is made of (its URL: the page's stable one, a
    served site's ephemeral port replaced, as in the documents)."""
    headers = [(k.decode("latin-1"), v.decode("latin-1"))
               for k, values in response.headers.items() if k.lower() not in WIRE_HEADERS for v in values]
    headers.append(("Content-Length", str(len(response.body))))
    return WarcInput(page.url, f"{response.status} {http_reason(response.status)}", headers, response.body)


def http_reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def warc_record(warc: WarcInput) -> bytes:
    """A WARC response record as one gzip member (what warcio's WARCWriter(gzip=True) writes)."""
    buffer = BytesIO()
    writer = WARCWriter(buffer, gzip=False)
    status = StatusAndHeaders(warc.status_line, warc.headers, protocol="HTTP/1.1")
    writer.write_record(writer.create_warc_record(warc.url, "response", payload=BytesIO(warc.body),
                                                  http_headers=status))
    compressor = zlib.compressobj(WARC_GZIP_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS + 16)
    return compressor.compress(buffer.getvalue()) + compressor.flush()


@lru_cache(maxsize=64)
def link_extractor(rules: Rules) -> LinkExtractor:
    return LinkExtractor(allow=rules[0], deny=rules[1])


def page_links(root: HtmlElement, text: str, response_url: str, encoding: str, rules: Rules) -> list[str]:
    """What LinkExtractor(allow, deny).extract_links(response) gives (its URLs), from a parsed tree:
    href of <a> and <area>, joined with the <base href>, made safe in the page's encoding, filtered
    by the rules and the ignored extensions, first occurrence kept."""
    extractor = link_extractor(rules)
    base_url = get_base_url(text[0:4096], response_url, encoding)
    links = []
    for element in root.iter("a", "area"):
        value = element.get("href")
        if value is None:
            continue
        try:
            url = urljoin(base_url, strip_html5_whitespace(value))
            url = urljoin(response_url, safe_url_string(url, encoding=encoding))
        except ValueError:
            continue
        links.append(Link(url))
    links = unique_list(extractor._process_links(links), key=lambda link: link.url)
    return [link.url for link in links]


def analyse_page(body: bytes, url: str, response_url: str, encoding: str, rules: Rules | None,
                 warc: WarcInput | None) -> Analysis:
    """Extraction, links (when `rules` is given) and the WARC record (when `warc` is) of one page:
    its body, decoded as Scrapy's TextResponse.text decodes it (`encoding`: response.encoding)."""
    text = html_to_unicode(f"charset={encoding}", body)[1]
    tree = load_html(text)
    links = None
    if rules is not None:
        root = tree
        if root is None:  # not a document to trafilatura: parse it as Scrapy's selector does
            from scrapy.selector import Selector

            root = Selector(text=text, type="html").root
        links = page_links(root, text, response_url, encoding, rules)
    extracted = extract_tree(tree, url, text) if tree is not None else None
    return Analysis(extracted, links, warc_record(warc) if warc is not None else None)


def ready() -> None:
    """A task that only loads this module (and trafilatura, Scrapy) in a worker."""


def die_with_crawl() -> None:
    """A worker's initializer: go when the crawl process dies, even killed outright (SIGKILL, the
    out-of-memory killer), rather than wait on the pool's queue forever (a thread waits on the
    pipe that multiprocessing gives each child for that; it ends the worker when the pipe closes)."""
    crawl = multiprocessing.parent_process()
    if crawl is None:
        return

    def watch() -> None:
        crawl.join()
        os._exit(1)

    threading.Thread(target=watch, name="die with the crawl", daemon=True).start()


def pool_context() -> Any:
    """Workers forked by a fork server that has imported this module (trafilatura, lxml, Scrapy's
    link rules) once: not spawned, each importing it all (~0.4 s of CPU each, at the crawl's start,
    while the first pages wait). Not forked from the crawl process itself, which has threads
    (Twisted's pool) that a fork would copy mid-work; the fork server has none."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


class Analyser:
    """analyse_page in a pool of `workers` processes, or in the caller's thread for 0."""

    def __init__(self, workers: int):
        self.workers = workers
        self.pool = self.start_pool() if workers > 0 else None

    def start_pool(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(self.workers, mp_context=pool_context(), initializer=die_with_crawl)
        # start the workers now (a pool starts them as work comes), from a thread: the first start waits
        # for the fork server's imports (~0.4 s), which overlap Scrapy's start-up instead of holding it
        # up, or the first page, whose links the crawl waits for
        threading.Thread(target=lambda: [pool.submit(ready) for _ in range(self.workers)], name="start workers",
                         daemon=True).start()
        return pool

    async def run(self, *args: Any) -> Analysis:
        """The page's analysis; a worker that died meanwhile (killed, out of memory) breaks the whole
        pool: a fresh one is started and the page tried once more there."""
        if self.pool is None:
            return analyse_page(*args)
        pool = self.pool
        try:
            return await asyncio.wrap_future(pool.submit(analyse_page, *args))
        except BrokenProcessPool:
            if self.pool is pool:  # the first page to find it broken replaces it for all
                logger.warning("an extraction worker died; starting the pool again")
                pool.shutdown(wait=False, cancel_futures=True)
                self.pool = self.start_pool()
        return await asyncio.wrap_future(self.pool.submit(analyse_page, *args))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def rules_of(allow: Any, deny: Any) -> Rules:
    return tuple(arg_to_iter(allow)), tuple(arg_to_iter(deny))
