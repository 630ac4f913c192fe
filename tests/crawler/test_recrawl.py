"""Incremental recrawls: the same `crawl SOURCE --out DIR` again revalidates what is older than
recrawl_after with conditional requests and leaves the current document of every page in DIR."""

import os
import time

from crawler.run import crawl
from tokenmill.documents import read_documents
from warcio.archiveiterator import ArchiveIterator

from .conftest import HttpServer, crawl_config, page, source_for, write_site


def documents(out) -> dict[str, str]:
    return {d.meta["url"].rsplit("/", 1)[1]: d.text for d in read_documents(out / "documents")}


def warc_uris(out) -> list[str]:
    with open(out / "warc" / "site.warc.gz", "rb") as handle:
        return [r.rec_headers.get_header("WARC-Target-URI").rsplit("/", 1)[1] for r in ArchiveIterator(handle)]


def test_a_recrawl_fetches_only_what_changed(tmp_path):
    names = ["a.html", "b.html", "c.html", "d.html", "e.html"]
    root = write_site(tmp_path / "site", {"index.html": page("Index", names)} | {n: page(f"Old {n}") for n in names})
    server = HttpServer(root)
    try:
        source = source_for(server, tmp_path, name="site", recrawl_after="1s")
        first = crawl([source], tmp_path / "out", crawl_config())
        assert first["documents_out"] == 6 and "recrawl" not in first["sources"]["site"]
        # two pages change (one of them now links to a new page), one goes away
        later = time.time() + 10  # Last-Modified has whole seconds: make the change visible
        write_site(root, {"a.html": page("New a.html"), "b.html": page("New b.html", ["f.html"]),
                          "f.html": page("New f.html")})
        for name in ("a.html", "b.html", "f.html"):
            os.utime(root / name, (later, later))
        (root / "e.html").unlink()
        time.sleep(1.1)
        second = crawl([source], tmp_path / "out", crawl_config())
        assert second["sources"]["site"]["recrawl"] == {"fresh": 0, "not_modified": 3, "changed": 2, "new": 1,
                                                        "gone": 1}
        texts = documents(tmp_path / "out")
        assert sorted(texts) == ["a.html", "b.html", "c.html", "d.html", "f.html", "index.html"]
        assert texts["a.html"].startswith("New a.html") and texts["c.html"].startswith("Old c.html")
        # unchanged pages' records carried over, changed ones new, the 404 of the page gone archived too
        assert sorted(warc_uris(tmp_path / "out")) == sorted([*texts, "e.html"])
        # within recrawl_after nothing is asked for again: every page is carried over as it is
        third = crawl([source_for(server, tmp_path, name="site", recrawl_after="1h")], tmp_path / "out",
                      crawl_config())
        assert third["sources"]["site"]["recrawl"] == {"fresh": 6, "not_modified": 0, "changed": 0, "new": 0,
                                                       "gone": 0}
        assert documents(tmp_path / "out") == texts
    finally:
        server.stop()


def test_a_crawl_of_one_source_carries_the_others_over_as_they_are(tmp_path):
    """The per-source deployments: refreshing one source leaves the other sources' documents and
    WARC records in the shared output byte for byte, and fetches nothing of theirs."""
    one = write_site(tmp_path / "one", {"index.html": page("One index", ["x.html"]), "x.html": page("Old one x")})
    two = write_site(tmp_path / "two", {"index.html": page("Two index", ["y.html"]), "y.html": page("Old two y")})
    servers = [HttpServer(one), HttpServer(two)]
    try:
        first, second = (source_for(server, tmp_path, name=name) for server, name in zip(servers, ["one", "two"]))
        crawl([first, second], tmp_path / "out", crawl_config())
        two_warc = (tmp_path / "out" / "warc" / "two.warc.gz").read_bytes()
        write_site(one, {"x.html": page("New one x")})
        write_site(two, {"y.html": page("New two y")})
        servers[1].stop()  # nothing of `two` may be fetched: a request would fail

        stats = crawl([first], tmp_path / "out", crawl_config(), carry_over=[second])

        texts = {(d.meta["source"], d.meta["url"].rsplit("/", 1)[1]): d.text
                 for d in read_documents(tmp_path / "out" / "documents")}
        assert sorted(texts) == [("one", "index.html"), ("one", "x.html"), ("two", "index.html"), ("two", "y.html")]
        assert texts["one", "x.html"].startswith("New one x") and texts["two", "y.html"].startswith("Old two y")
        assert (tmp_path / "out" / "warc" / "two.warc.gz").read_bytes() == two_warc
        assert stats["sources"]["two"]["carried_over"] and stats["sources"]["two"]["documents"] == 2
        assert stats["pages_fetched"] == stats["sources"]["one"]["pages_fetched"] == 2
        assert stats["documents_out"] == 4
    finally:
        for server in servers:
            server.stop()


def test_a_source_not_crawled_yet_is_not_carried_over(tmp_path):
    root = write_site(tmp_path / "one", {"index.html": page("One index")})
    server = HttpServer(root)
    try:
        first = source_for(server, tmp_path, name="one")
        absent = source_for(server, tmp_path, name="absent")
        stats = crawl([first], tmp_path / "out", crawl_config(), carry_over=[absent])
        assert set(stats["sources"]) == {"one"} and stats["documents_out"] == 1
    finally:
        server.stop()
