"""Issue 20, item 1: every request of a crawl is checked against the scope and allow_private of the
source it descends from, and each refusal is counted with its reason. End to end, loopback only:
three sources in one crawl and a "private service" on 127.0.0.1 that must receive nothing.
Item 5: credentials in crawled URLs (user:password@) never reach the documents, pages or WARC."""

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.config import load_source
from crawler.run import crawl
from tokenmill.documents import read_documents

from ..crawler.conftest import crawl_config, page, write_site, write_source
from ..crawler.hostile import HostileServer, html, redirect, sequence, text


def sitemap(urls: list[str], index: bool = False) -> tuple[int, dict[str, str], bytes]:
    tag, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    entries = "".join(f"<{item}><loc>{u}</loc></{item}>" for u in urls)
    body = f'<{tag} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</{tag}>'.encode()
    return 200, {"Content-Type": "application/xml"}, body


def meta_refresh(url: str):
    body = f'<html><head><meta http-equiv="refresh" content="0; url={url}"></head><body>on</body></html>'.encode()
    return lambda n: (200, {"Content-Type": "text/html; charset=utf-8"}, body)


def other_site(private: str, credentials: str) -> dict:
    """A site on 127.0.0.2 whose every way out leads to the private service (and some of whose
    links and redirects carry credentials)."""
    return {
        "/index.html": html("Other home", ["/retry.html", "/jump.html", "/refresh.html", f"{private}/linked.html",
                                           f"{credentials}/query.html?lang=fa", "/moved.html"]),
        # a 503 makes Scrapy retry with dont_filter=True, which the redirect then copies
        "/retry.html": sequence(lambda n: (503, {"Retry-After": "0"}, b"busy"), redirect(f"{private}/after-retry.html")),
        "/jump.html": redirect(f"{private}/jump.html"),
        "/refresh.html": meta_refresh(f"{private}/refresh.html"),
        "/listed.html": html("Listed in the sitemap"),
        "/query.html": html("Query"),
        "/moved.html": redirect(f"{credentials}/query.html?lang=pl"),
    }


def pages_of(out: Path, source: str) -> list[dict]:
    with gzip.open(out / "pages" / f"{source}.jsonl.gz", "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


@dataclass
class Crawled:
    out: Path
    stats: dict
    private: str  # the private service's origin
    private_hits: list  # what the private service received
    other: str  # the second source's origin


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Crawled:
    tmp_path = tmp_path_factory.mktemp("scope")
    robots_allow_all = text("User-agent: *\nAllow: /\n")  # the private service would let a crawler in
    with HostileServer({"/robots.txt": robots_allow_all, "/c.html": html("Private")}) as private, \
            HostileServer({}, host="127.0.0.2") as other:
        credentials = f"http://user:secret@127.0.0.2:{other.port}"
        other.routes.update(other_site(private.url, credentials))
        other.routes["/sitemap.xml"] = lambda n: sitemap([f"{private.url}/sitemap.xml", f"{other.url}/pages.xml"],
                                                         index=True)
        other.routes["/pages.xml"] = lambda n: sitemap([f"{private.url}/from-sitemap.html", f"{other.url}/listed.html"])
        # served on 127.0.0.1 (allow_private: true): allows its own address and port, nothing else there
        site = write_site(tmp_path / "served", {"index.html": page("Served home", ["a.html", f"{private.url}/x.html"]),
                                                 "a.html": page("Served alpha")})
        served = load_source(str(write_source(tmp_path, name="served", serve=str(site), start_urls=["/index.html"],
                                              allow_private=True, max_pages=20, max_depth=2)))
        on_other = load_source(str(write_source(
            tmp_path, name="other", start_urls=[f"{other.url}/index.html"], sitemap_urls=[f"{other.url}/sitemap.xml"],
            allowed_domains=["127.0.0.2"], allow_private=["127.0.0.2"], max_pages=20, max_depth=1)))
        # a name of the private service in scope, but no private address allowed
        named = load_source(str(write_source(tmp_path, name="named", start_urls=[f"http://localhost:{private.port}/c.html"],
                                             allowed_domains=["localhost"], allow_private=False,
                                             max_pages=5, max_depth=0)))
        stats = crawl([served, on_other, named], tmp_path / "out", crawl_config(retry_times=1))
        assert {"/retry.html", "/pages.xml", "/moved.html"} <= set(other.paths())
    return Crawled(tmp_path / "out", stats, private.url, private.hits, other.url)


def test_no_source_reaches_what_only_another_source_may_and_each_refusal_is_counted(crawled):
    assert crawled.private_hits == []  # not a page, not a robots.txt (which would have let it in)
    private = crawled.private
    refused = {source: {p["url"]: p["refused"] for p in pages_of(crawled.out, source) if p["refused"]}
               for source in ("served", "other", "named")}
    assert refused == {
        "served": {f"{private}/x.html": "out_of_scope"},  # same address, another port
        "other": {f"{private}/{path}": "out_of_scope"  # a retry, a redirect, a meta refresh, sitemaps
                  for path in ("after-retry.html", "jump.html", "refresh.html", "sitemap.xml", "from-sitemap.html")},
        "named": {f"http://localhost:{private.split(':')[-1]}/c.html": "loopback"},
    }
    sources = crawled.stats["sources"]
    assert sources["served"]["refused"] == {"out_of_scope": 1}
    assert sources["other"]["refused"] == {"out_of_scope": 5}
    assert sources["named"]["refused"] == {"loopback": 1}
    assert crawled.stats["refused"] == {"loopback": 1, "out_of_scope": 6}
    urls = {d.meta["url"] for d in read_documents(crawled.out / "documents")}
    assert urls == {"http://served.localhost/a.html", "http://served.localhost/index.html",
                    *(f"{crawled.other}/{path}" for path in ("index.html", "listed.html", "query.html?lang=fa",
                                                              "query.html?lang=pl"))}


def test_credentials_in_crawled_urls_never_reach_the_outputs_and_the_query_stays(crawled):
    documents = list(read_documents(crawled.out / "documents"))
    recorded = [d.meta[key] for d in documents for key in ("url", "canonical_url")]
    pages = pages_of(crawled.out, "other")
    recorded += [url for p in pages for url in [p["url"], *p["links"], *p["redirected_from"]]]
    with open(crawled.out / "warc" / "other.warc.gz", "rb") as handle:
        recorded += [record.rec_headers.get_header("WARC-Target-URI") for record in ArchiveIterator(handle)]
    assert recorded and not [url for url in recorded if "secret" in url or "user@" in url or "user:" in url]
    assert f"{crawled.other}/query.html?lang=pl" in {p["url"] for p in pages}  # the query is kept
    moved = next(p for p in pages if p["url"] == f"{crawled.other}/query.html?lang=pl")
    assert moved["redirected_from"] == [f"{crawled.other}/moved.html"]
