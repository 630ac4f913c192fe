"""A tiny real web site, served by `python -m http.server` on 127.0.0.1, for crawl tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from crawler.config import CrawlConfig, Source, load_source

PARAGRAPH = ("The quick brown fox jumps over the lazy dog while the crawler reads every line of this "
             "page, because a page needs enough words to count as a document and not as a stub. ")


def page(title: str, links: list[str] = (), paragraphs: int = 3, lang: str | None = None) -> str:
    lang_attr = f' lang="{lang}"' if lang else ""
    anchors = "".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    body = "".join(f"<p>{title}, part {i}: {PARAGRAPH}</p>" for i in range(paragraphs))
    return (f"<!DOCTYPE html><html{lang_attr}><head><meta charset=\"utf-8\"><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1>{body}</article><nav><ul>{anchors}</ul></nav></body></html>")


def write_site(root: Path, pages: dict[str, str]) -> Path:
    for path, text in pages.items():
        file = root / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
    return root


def small_site(root: Path) -> Path:
    """Links, a robots.txt that disallows /private/, a chain deeper than max_depth 2, an oversize
    page, a non-HTML file, a stub page and an off-domain link."""
    return write_site(root, {
        "robots.txt": "User-agent: *\nDisallow: /private/\n",
        "index.html": page("Home", ["a.html", "a.html#part", "b.html", "private/secret.html", "big.html",
                                    "data.txt", "short.html", "deep/d1.html", "http://127.0.0.2/off.html"],
                           lang="en"),
        "a.html": page("Alpha", ["index.html", "b.html"]),
        "b.html": page("Beta", ["a.html"], lang="pl-PL"),
        "private/secret.html": page("Secret"),
        "big.html": page("Big", paragraphs=300),
        "data.txt": PARAGRAPH * 5,
        "short.html": page("Short", paragraphs=0),
        "deep/d1.html": page("Deep one", ["d2.html"]),
        "deep/d2.html": page("Deep two", ["d3.html"]),
        "deep/d3.html": page("Deep three"),
    })


def chain_site(root: Path, pages: int) -> Path:
    """`pages` pages, page i linking to i+1 and i+2: a crawl of it takes a while, one at a time."""
    names = [f"p{i:03d}.html" for i in range(pages)]
    return write_site(root, {
        name: page(f"Page {i}", names[i + 1:i + 3]) for i, name in enumerate(names)
    } | {"index.html": page("Index", names[:1])})


class HttpServer:
    def __init__(self, directory: Path):
        self.directory = directory
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(directory)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()  # "Serving HTTP on 127.0.0.1 port N (http://...) ..."
        self.port = int(line.split(" port ")[1].split()[0])
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory):
    server = HttpServer(small_site(tmp_path_factory.mktemp("site")))
    yield server
    server.stop()


def write_source(directory: Path, **fields) -> Path:
    path = directory / f"{fields['name']}.yaml"
    path.write_text(yaml.safe_dump(fields), encoding="utf-8")
    return path


def source_for(server: HttpServer, directory: Path, **fields) -> Source:
    fields = {"name": "small", "start_urls": [f"{server.url}/index.html"], "allowed_domains": ["127.0.0.1"],
              "allow_private": True, "max_pages": 50, "max_depth": 2} | fields
    return load_source(str(write_source(directory, **fields)))


# a local test server needs no politeness; extraction in the event loop spares the tests a process
# pool's start-up (test_crawl.py checks that the pool gives the same documents)
FAST = {"download_delay": 0.0, "concurrent_requests_per_domain": 8, "extract_workers": 0}


def crawl_config(**fields) -> CrawlConfig:
    return CrawlConfig(**({"min_text_chars": 200, "max_response_bytes": 20_000, "progress_every_s": 1.0} | FAST | fields))
