"""Politeness against a scripted server on 127.0.0.1: Crawl-delay, Retry-After, robots.txt 5xx.
Gaps are measured from the server's own request timestamps (behaviour, not speed)."""

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from crawler.config import CrawlConfig
from crawler.politeness import retry_after_seconds
from crawler.run import crawl
from crawler.settings import scrapy_settings
from tokenmill.errors import TransientError

from .conftest import crawl_config, source_for
from .hostile import HostileServer, html, sequence, text


def gaps(times: list[float]) -> list[float]:
    times = sorted(times)
    return [b - a for a, b in zip(times, times[1:])]


def test_defaults_are_polite_and_a_source_can_set_its_own(tmp_path):
    with HostileServer({}) as server:
        default = scrapy_settings(CrawlConfig(), source_for(server, tmp_path), tmp_path, tmp_path, tmp_path)
        fast = scrapy_settings(CrawlConfig(), source_for(server, tmp_path, delay_s=0.0, concurrency=8),
                               tmp_path, tmp_path, tmp_path)
    assert (default["CONCURRENT_REQUESTS_PER_DOMAIN"], default["DOWNLOAD_DELAY"]) == (1, 1.0)
    assert default["AUTOTHROTTLE_ENABLED"] and default["ROBOTSTXT_OBEY"]
    assert (fast["CONCURRENT_REQUESTS_PER_DOMAIN"], fast["DOWNLOAD_DELAY"], fast["AUTOTHROTTLE_ENABLED"]) == (8, 0.0,
                                                                                                           False)


def test_robots_crawl_delay_spaces_the_requests_to_a_host(tmp_path):
    pages = [f"/p{i}.html" for i in range(4)]
    routes = {"/robots.txt": text("User-agent: *\nCrawl-delay: 0.5\n"), "/index.html": html("Home", pages)}
    routes |= {p: html(f"Page {p}") for p in pages}
    with HostileServer(routes) as server:
        # the source asks for no delay and 4 at a time: Crawl-delay wins
        source = source_for(server, tmp_path, delay_s=0.0, concurrency=4)
        stats = crawl([source], tmp_path / "out", crawl_config(autothrottle=True))
        page_times = [h.at for h in server.hits if h.path != "/robots.txt"]
    assert stats["documents_out"] == 5 and len(page_times) == 5
    assert min(gaps(page_times)) >= 0.45


def test_retry_after_pauses_only_that_host(tmp_path):
    b_pages = [f"/b/{i}.html" for i in range(4)]
    routes = {"/a/index.html": sequence(html("Busy", status=429, **{"Retry-After": "2"}), html("A home")),
              "/b/index.html": html("B home", b_pages)} | {p: html(f"B {p}") for p in b_pages}
    with HostileServer(routes) as server:
        source = source_for(server, tmp_path, allowed_domains=["127.0.0.1", "localhost"], delay_s=0.2,
                            concurrency=1, start_urls=[f"{server.url}/a/index.html",
                                                       f"http://localhost:{server.port}/b/index.html"])
        stats = crawl([source], tmp_path / "out", crawl_config(autothrottle=False))
        first, second = server.times("/a/index.html")
        b_times = server.times("/b/")
    assert second - first >= 1.9  # Retry-After: 2, measured at the server
    assert sum(first < t < second for t in b_times) >= 3  # the other host went on meanwhile
    assert stats["documents_out"] == 6


def test_retry_after_is_capped(tmp_path):
    routes = {"/index.html": sequence(html("Busy", status=503, **{"Retry-After": "3600"}), html("Home"))}
    with HostileServer(routes) as server:
        source = source_for(server, tmp_path, delay_s=0.0)
        stats = crawl([source], tmp_path / "out", crawl_config(retry_after_max_s=1.0))
        first, second = server.times("/index.html")
    assert 0.9 <= second - first < 30 and stats["documents_out"] == 1


def test_retry_after_values():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90.0
    assert retry_after_seconds(format_datetime(now - timedelta(seconds=90), usegmt=True), now) == 0.0
    assert retry_after_seconds("") is None and retry_after_seconds("soon") is None


@pytest.mark.parametrize("status", [500, 503])
def test_robots_txt_server_error_disallows_the_host(tmp_path, status):
    with HostileServer({"/robots.txt": text("down", status=status), "/index.html": html("Home")}) as server:
        source = source_for(server, tmp_path)
        with pytest.raises(TransientError, match="robots_unavailable 1"):
            crawl([source], tmp_path / "out", crawl_config(retry_times=0))
        assert set(server.paths()) == {"/robots.txt"}  # the page itself was never asked for


def test_robots_txt_client_error_allows_the_host(tmp_path):
    with HostileServer({"/robots.txt": text("gone", status=410), "/index.html": html("Home")}) as server:
        stats = crawl([source_for(server, tmp_path)], tmp_path / "out", crawl_config())
    assert stats["documents_out"] == 1
