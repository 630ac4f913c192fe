"""Issue 20, item 5 (the crawler's part): site-local IPv6 is private, and the local file server of
`serve:` sources gives the directory's files and nothing else. No traffic leaves loopback: the
address decisions are pure functions, the server listens on 127.0.0.1."""

import http.client
import os
from pathlib import Path

import pytest

from crawler.addresses import Allowance, SourceScope, refusal
from crawler.serve import serve_directory


@pytest.mark.parametrize("address", ["fec0::1", "fec0::192.168.0.1", "feff:ffff:ffff:ffff::1"])
def test_site_local_ipv6_is_refused_as_private(address):
    assert refusal(address) == "private"
    assert SourceScope.of_domains([address], allow_private=False).refusal("http", address, None) == "private"
    assert Allowance.from_setting(["fec0::/10"]).refusal(address) is None  # unless the source allows it


def test_the_neighbours_of_site_local_keep_their_own_reasons():
    assert refusal("fe80::1") == "link_local"
    assert refusal("ff02::1") == "multicast"
    assert refusal("2606:4700::1111") is None  # a public address


def get(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.fixture
def served(tmp_path: Path):
    """A served directory with symlinks out of it, and a secret beside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("the secret")
    (outside / "index.html").write_text("<p>the secret index</p>")
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "bare").mkdir()
    (root / "index.html").write_text("<p>home</p>")
    (root / "docs" / "page.html").write_text("<p>page</p>")
    (root / "bare" / "note.txt").write_text("a note")
    (root / "link-out.txt").symlink_to(outside / "secret.txt")
    (root / "dir-out").symlink_to(outside, target_is_directory=True)
    (root / "evil").mkdir()
    (root / "evil" / "index.html").symlink_to(outside / "index.html")
    (root / "link-in.html").symlink_to(root / "docs" / "page.html")  # inside: served
    with serve_directory(root) as port:
        yield port


def test_the_server_gives_the_directorys_files(served):
    assert get(served, "/") == (200, b"<p>home</p>")
    assert get(served, "/docs/page.html") == (200, b"<p>page</p>")
    assert get(served, "/link-in.html") == (200, b"<p>page</p>")  # a symlink that stays inside


@pytest.mark.parametrize("path", ["/bare/", "/docs/", "/dir-out/"])
def test_the_server_lists_no_directory(served, path):
    status, body = get(served, path)
    assert status == 404 and b"note.txt" not in body and b"page.html" not in body and b"secret" not in body


@pytest.mark.parametrize("path", ["/link-out.txt", "/dir-out/secret.txt", "/dir-out/index.html", "/evil/",
                                  "/evil/index.html", "/../outside/secret.txt", "/%2e%2e/outside/secret.txt"])
def test_the_server_follows_no_symlink_out_of_its_directory(served, path):
    status, body = get(served, path)
    assert status == 404 and b"secret" not in body


def test_a_served_directory_that_is_itself_a_symlink_is_served(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "index.html").write_text("<p>real</p>")
    (tmp_path / "alias").symlink_to(real, target_is_directory=True)
    with serve_directory(tmp_path / "alias") as port:
        assert get(port, "/index.html") == (200, b"<p>real</p>")
    assert os.path.islink(tmp_path / "alias")
