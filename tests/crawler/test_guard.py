"""The address guard end to end, with loopback only: a name that resolves to 127.0.0.1 and a
redirect into 127.0.0.2, from sources that did not allow them."""

import pytest
from scrapy.http import Request
from scrapy.utils.test import get_crawler

from crawler.config import Source
from crawler.middlewares import AddressGuardMiddleware, AddressRefused
from crawler.run import crawl
from crawler.spiders.source import SourceSpider
from crawler.urls import UrlMap
from tokenmill.documents import read_documents
from tokenmill.errors import UserError

from .conftest import crawl_config, source_for
from .hostile import HostileServer, html, redirect


def test_a_name_resolving_to_loopback_is_refused_without_a_packet(tmp_path):
    with HostileServer({"/index.html": html("Home")}) as server:
        source = source_for(server, tmp_path, start_urls=[f"http://localhost:{server.port}/index.html"],
                            allowed_domains=["localhost"], allow_private=False)
        with pytest.raises(UserError, match=r"crawl stored nothing: 1 pages tried: private_address 1 "
                                            r"\(refused addresses: loopback 1\)") as caught:
            crawl([source], tmp_path / "out", crawl_config())
        assert "\n" not in str(caught.value)
        assert server.hits == []  # not even robots.txt
    assert not (tmp_path / "out").exists()


def test_a_listed_loopback_address_is_reached_by_name(tmp_path):
    with HostileServer({"/index.html": html("Home")}) as server:
        source = source_for(server, tmp_path, start_urls=[f"http://localhost:{server.port}/index.html"],
                            allowed_domains=["localhost"], allow_private=["127.0.0.1"])
        stats = crawl([source], tmp_path / "out", crawl_config())
    assert stats["documents_out"] == 1  # ::1 was filtered out, 127.0.0.1 let through


def test_redirects_are_checked_like_requests(tmp_path):
    routes = {"/index.html": html("Home", ["/jump.html", "/jump-file.html"]),
              "/jump.html": None, "/jump-file.html": redirect("file:///etc/hostname"),
              "/target.html": html("Target")}
    with HostileServer(routes) as server:
        routes["/jump.html"] = redirect(f"http://127.0.0.2:{server.port}/target.html")
        source = source_for(server, tmp_path, allowed_domains=["127.0.0.1", "127.0.0.2"],
                            allow_private=["127.0.0.1"])
        stats = crawl([source], tmp_path / "out", crawl_config())
        assert [h for h in server.hits if h.host.startswith("127.0.0.2")] == []
        assert "/target.html" not in server.paths()
    urls = [d.meta["url"] for d in read_documents(tmp_path / "out" / "documents")]
    assert urls == [f"{server.url}/index.html"]
    assert stats["refused"] == {"loopback": 1}
    assert stats["removed"]["private_address"] == 1


def test_a_proxy_from_the_environment_cannot_carry_a_request_past_the_guard(tmp_path, monkeypatch):
    """Through a proxy the address connected to is the proxy's, never the page's: the crawler takes
    no proxy from http_proxy/https_proxy, so the guard keeps judging the page's own address."""
    with HostileServer({}, host="127.0.0.2") as proxy, HostileServer({"/index.html": html("Home")}) as site:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.2:{proxy.port}")
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        # the proxy's address is allowed, the page's (localhost: 127.0.0.1, ::1) is not
        source = source_for(site, tmp_path, start_urls=[f"http://localhost:{site.port}/index.html"],
                            allowed_domains=["localhost"], allow_private=["127.0.0.2"])
        with pytest.raises(UserError, match="refused addresses: loopback 1"):
            crawl([source], tmp_path / "out", crawl_config())
        assert proxy.hits == [] and site.hits == []


def test_the_guard_checks_requests_by_their_source_whatever_made_them(tmp_path):
    """The guard as Scrapy builds it for one source's crawler: a request with no source (a
    robots.txt Scrapy's middleware makes) is this source's and checked like any; dont_filter does
    not get a request past it; one that names another source is refused; each refusal is counted."""
    crawler = get_crawler(SourceSpider, {"TOKENMILL_EXTRACT_WORKERS": 0})
    source = Source(name="mine", start_urls=["http://127.0.0.2:81/"], max_pages=1, max_depth=0,
                    allowed_domains=["127.0.0.2"], allow_private=["127.0.0.2"])
    crawler.spider = crawler._create_spider(source=source, urls=UrlMap(), pages_file=tmp_path / "pages.jsonl")
    guard = AddressGuardMiddleware.from_crawler(crawler)
    try:
        robots = Request("http://127.0.0.2:81/robots.txt")
        assert guard.process_request(robots) is None and robots.meta["source"] == "mine"
        for request, reason in [(Request("http://127.0.0.1:81/robots.txt", dont_filter=True), "out_of_scope"),
                                (Request("http://127.0.0.2:81/x", meta={"source": "yours"}), "other_source"),
                                (Request("file:///etc/hostname", dont_filter=True), "scheme")]:
            with pytest.raises(AddressRefused) as refused:
                guard.process_request(request)
            assert refused.value.reason == reason
    finally:
        crawler.spider.closed("finished")
    assert {k: v for k, v in crawler.stats.get_stats().items() if k.startswith("tokenmill/refused/")} == {
        "tokenmill/refused/out_of_scope": 1, "tokenmill/refused/other_source": 1, "tokenmill/refused/scheme": 1}
