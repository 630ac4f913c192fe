"""The address guard end to end, with loopback only: a name that resolves to 127.0.0.1 and a
redirect into 127.0.0.2, from sources that did not allow them."""

import pytest

from crawler.run import crawl
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
