"""Ingest against the crawler itself: the WARC a crawl writes ingests to the crawl's documents, and a
source that names archives (`warc:`) is a crawl source like any other, carried over with the rest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from warcio.archiveiterator import ArchiveIterator

from crawler.config import load_source
from crawler.ingest import ingest
from crawler.run import crawl
from tokenmill.documents import read_documents

from .conftest import crawl_config, small_site, write_source

SAME = ("id", "text", "title", "lang", "canonical_url", "content_sha256", "content_type", "declared_charset",
        "detected_charset", "status", "license", "source_languages")


def documents(out: Path) -> dict[str, dict]:
    return {d.meta["url"]: {"id": d.id, "text": d.text, **d.meta} for d in read_documents(out / "documents")}


def warc_dates(warc: Path) -> dict[str, str]:
    with open(warc, "rb") as handle:
        return {r.rec_headers["WARC-Target-URI"]: r.rec_headers["WARC-Date"] for r in ArchiveIterator(handle)}


@pytest.fixture(scope="module")
def crawled(tmp_path_factory):
    directory = tmp_path_factory.mktemp("crawl")
    site = small_site(directory / "site")
    fields = {"license": "CC-BY-4.0", "languages": ["en", "pl"]}
    web = write_source(directory, name="local", serve=str(site), allow_private=True, max_pages=50, max_depth=2,
                       start_urls=["/index.html"], **fields)
    crawl([load_source(str(web))], directory / "crawl", crawl_config())
    archived = write_source(directory, name="archived", warc=[str(directory / "crawl" / "warc" / "local.warc.gz")],
                            **fields)
    return directory, load_source(str(web)), load_source(str(archived))


def test_a_crawls_warc_ingests_to_the_crawls_documents(crawled, tmp_path):
    directory, web, _ = crawled
    warc = directory / "crawl" / "warc" / "local.warc.gz"
    stats = ingest([str(warc)], tmp_path / "ingested", crawl_config(), source="local")
    crawl_docs, ingested = documents(directory / "crawl"), documents(tmp_path / "ingested")
    assert len(crawl_docs) >= 5 and sorted(ingested) == sorted(crawl_docs)
    dates = warc_dates(warc)
    for url, doc in crawl_docs.items():
        assert {k: ingested[url][k] for k in SAME if k not in ("license", "source_languages")} == \
               {k: doc[k] for k in SAME if k not in ("license", "source_languages")}
        assert ingested[url]["fetched_at"] == dates[url][:19] + "Z"
    assert stats["removed"].get("not_html") == 1 and stats["removed"].get("too_short") == 1  # data.txt, short.html


def test_a_source_of_archives_is_crawled_and_carried_over(crawled, tmp_path):
    directory, _, archived = crawled
    first = crawl([archived], tmp_path / "out", crawl_config())
    from_archive = documents(tmp_path / "out")
    crawl_docs = documents(directory / "crawl")
    assert first["sources"]["archived"]["documents"] == len(crawl_docs) == len(from_archive)
    for url, doc in from_archive.items():
        assert doc["source"] == "archived" and doc["id"].startswith("archived/")
        assert {k: doc[k] for k in ("text", "title", "lang", "content_sha256", "license", "source_languages")} == \
               {k: crawl_docs[url][k] for k in ("text", "title", "lang", "content_sha256", "license", "source_languages")}
    # another source crawled into the same output (one of archives too: no site to serve, a quick test)
    other = load_source(str(write_source(tmp_path, name="other", warc=archived.warc)))
    second = crawl([other], tmp_path / "out", crawl_config(), carry_over=[archived])
    assert second["sources"]["archived"]["carried_over"] and second["sources"]["other"]["documents"] == len(crawl_docs)
    both = [d for d in read_documents(tmp_path / "out" / "documents")]
    assert {d.meta["source"] for d in both} == {"archived", "other"}
    assert {d.id: d.text for d in both if d.meta["source"] == "archived"} == \
           {d["id"]: d["text"] for d in from_archive.values()}
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["stage"] == "crawl"


def test_a_source_of_archives_needs_no_start_urls_and_may_not_crawl_too(tmp_path):
    from crawler.sources import format_rows, list_sources, validate

    good = write_source(tmp_path, name="good", warc=["s3://commoncrawl/crawl-data/x/warc.paths.gz"],
                        warc_base_url="s3://commoncrawl")
    both = write_source(tmp_path, name="both", warc=["a.warc.gz"], start_urls=["https://example.org/"])
    web = write_source(tmp_path, name="web", start_urls=["https://example.org/"], allowed_domains=["example.org"])
    errors = validate([good, both, web])
    assert errors == [f"{both}: warc: a source either ingests archives or crawls; remove start_urls or warc",
                      f"{web}: missing required key 'max_pages'", f"{web}: missing required key 'max_depth'"]
    (tmp_path / "both.yaml").unlink()
    listing = format_rows(list_sources(tmp_path, tmp_path / "no-crawl"))
    assert "good  archives: s3://commoncrawl/crawl-data/x/warc.paths.gz  last crawl: never" in listing
