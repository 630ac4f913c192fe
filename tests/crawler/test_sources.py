"""Sources are data: one YAML file adds a site; `tokenmill sources list|validate`."""

import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from crawler.sources import list_sources, validate
from pipeline.cli import main

from .hostile import HostileServer, html


def sitemap(urls: list[str], index: bool = False) -> bytes:
    tag, item = ("sitemapindex", "sitemap") if index else ("urlset", "url")
    entries = "".join(f"<{item}><loc>{u}</loc></{item}>" for u in urls)
    return (f'<?xml version="1.0" encoding="UTF-8"?><{tag} xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"{entries}</{tag}>").encode()


def test_adding_a_source_is_one_yaml_file(tmp_path, capsys):
    routes = {"/index.html": html("Home", ["/linked.html"]), "/linked.html": html("Linked"),
              "/only-in-sitemap.html": html("Only in the sitemap"), "/denied/x.html": html("Denied")}
    with HostileServer(routes) as server:
        pages = [f"{server.url}/only-in-sitemap.html", f"{server.url}/denied/x.html", "http://127.0.0.2/x"]
        leaf = gzip.compress(sitemap(pages))
        routes["/sitemap-index.xml"] = lambda n: (200, {"Content-Type": "application/xml"},
                                                  sitemap([f"{server.url}/sitemap-1.xml.gz"], index=True))
        routes["/sitemap-1.xml.gz"] = lambda n: (200, {"Content-Type": "application/octet-stream"}, leaf)
        sources = tmp_path / "sources"
        sources.mkdir()
        (sources / "my-site.yaml").write_text(yaml.safe_dump({
            "name": "my-site", "start_urls": [f"{server.url}/index.html"], "allowed_domains": ["127.0.0.1"],
            "allow_private": ["127.0.0.1"], "max_pages": 20, "max_depth": 1, "deny": ["/denied/"],
            "sitemap_urls": [f"{server.url}/sitemap-index.xml"], "languages": ["en", "fa"],
            "license": "CC-BY-SA-4.0", "delay_s": 0, "concurrency": 2, "recrawl_after": "7d"}))
        params = tmp_path / "params.yaml"
        params.write_text(yaml.safe_dump({"paths": {"sources": str(sources), "crawl": str(tmp_path / "crawl")}}))
        assert main(["sources", "validate", "--params", str(params)]) == 0
        assert main(["crawl", "my-site", "--params", str(params)]) == 0
        assert "/denied/x.html" not in server.paths()
    table = pq.read_table(tmp_path / "crawl" / "documents").to_pylist()
    assert sorted(r["url"].removeprefix(server.url) for r in table) == ["/index.html", "/linked.html",
                                                                          "/only-in-sitemap.html"]
    assert all(r["license"] == "CC-BY-SA-4.0" and r["source_languages"] == ["en", "fa"] for r in table)
    capsys.readouterr()
    assert main(["sources", "list", "--params", str(params)]) == 0
    listing = capsys.readouterr().out
    assert "my-site" in listing and "max_pages=20" in listing and "3 documents" in listing


def test_validate_reports_every_problem_on_its_own_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nstart_urls: [ftp://x]\nmax_pages: 0\nmax_depth: 1\nlanguages: [EN]\n"
                   "recrawl_after: soon\nallow_private: [not-an-address]\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: typo\nstart_urls: [https://example.org/]\nmax_pages: many\nmax_depht: 1\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    errors = validate([bad, typo, broken, tmp_path / "missing.yaml"])
    assert all("\n" not in e for e in errors)
    expected = [(bad, "max_pages"), (bad, "languages"), (bad, "recrawl_after"), (bad, "allow_private"),
                (bad, "start_urls"), (bad, "allowed_domains"), (typo, "unknown key 'max_depht'"),
                (typo, "missing required key 'max_depth'"), (typo, "max_pages: expected int"),
                (broken, str(broken) + ":"), (tmp_path / "missing.yaml", "file not found")]
    for path, text in expected:
        assert any(e.startswith(str(path)) and text in e for e in errors), (path, text, errors)
    assert len(errors) == len(expected)


def test_validate_exits_non_zero(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\n")
    assert main(["sources", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "missing required key 'start_urls'" in err and "problem(s)" in err


def test_list_shows_an_invalid_source_without_failing(tmp_path):
    (tmp_path / "ok.yaml").write_text("name: ok\nstart_urls: [https://example.org/]\nallowed_domains: [example.org]\n"
                                      "max_pages: 5\nmax_depth: 1\n")
    (tmp_path / "bad.yaml").write_text("name: bad\n")
    crawl = tmp_path / "crawl"
    crawl.mkdir()
    (crawl / "stats.json").write_text(json.dumps({"sources": {"ok": {"documents": 4}}}))
    rows = {r["name"]: r for r in list_sources(tmp_path, crawl)}
    assert rows["ok"]["start_urls"] == ["https://example.org/"] and "4 documents" in rows["ok"]["last_crawl"]
    assert "missing required key" in rows["bad"]["error"]
