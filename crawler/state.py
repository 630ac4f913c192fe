"""The files of a crawl in progress, in `<out>.partial/`, shared by the parent and the Scrapy child.

    job.json                   what the child crawls: sources (resolved), settings, served ports
    warc/<source>-NNNNN.warc.gz  raw responses, one file per run of the child
    state/<source>/pages.jsonl   one line per URL tried, appended and flushed as it happens
    state/<source>/jobdir/       Scrapy's JOBDIR (request queue and seen-set)
    state/<source>/open          present while a crawl runs; left behind when the JOBDIR may be stale
    state/<source>/closed.json   why the last run of the source's spider stopped
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator



COMPLETE = {"finished", "max_pages"}  # reasons a spider closes with nothing left to do


@dataclass(frozen=True)
class CrawlState:
    root: Path  # <out>.partial

    @property
    def job_file(self) -> Path:
        return self.root / "job.json"

    @property
    def warc_dir(self) -> Path:
        return self.root / "warc"

    def source_dir(self, source: str) -> Path:
        return self.root / "state" / source

    def pages_file(self, source: str) -> Path:
        return self.source_dir(source) / "pages.jsonl"

    def jobdir(self, source: str) -> Path:
        return self.source_dir(source) / "jobdir"

    def open_marker(self, source: str) -> Path:
        return self.source_dir(source) / "open"

    def closed_file(self, source: str) -> Path:
        return self.source_dir(source) / "closed.json"

    def close_reason(self, source: str) -> str | None:
        try:
            return json.loads(self.closed_file(source).read_text(encoding="utf-8"))["reason"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def prepare_run(self, source: str) -> None:
        """Make a source's state safe to resume from after any kind of stop.

        A run killed mid-write leaves a truncated last line (dropped here) and possibly a stale
        JOBDIR (Scrapy saves its queue only on a graceful stop): that JOBDIR is removed, and the
        spider rebuilds its frontier from the links recorded in pages.jsonl instead."""
        directory = self.source_dir(source)
        directory.mkdir(parents=True, exist_ok=True)
        truncate_partial_line(self.pages_file(source))
        if self.open_marker(source).exists():
            shutil.rmtree(self.jobdir(source), ignore_errors=True)
            self.open_marker(source).unlink()
        self.closed_file(source).unlink(missing_ok=True)
        self.warc_dir.mkdir(parents=True, exist_ok=True)
        for warc in sorted(self.warc_dir.glob(f"{source}-*.warc.gz")):
            truncate_partial_warc(warc)

    def next_warc(self, source: str) -> Path:
        runs = len(list(self.warc_dir.glob(f"{source}-*.warc.gz")))
        return self.warc_dir / f"{source}-{runs:05d}.warc.gz"


def read_pages(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a pages.jsonl, skipping a last line cut short by a kill."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            yield json.loads(line)


def truncate_partial_line(path: Path) -> None:
    if not path.exists():
        return
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(end)


def truncate_partial_warc(path: Path) -> None:
    """Cut a .warc.gz after its last complete record. warcio writes each record as its own gzip
    member, so the file's complete members are its complete records."""
    end = complete_gzip_members(path.read_bytes())
    if end != os.path.getsize(path):
        with open(path, "r+b") as handle:
            handle.truncate(end)


def complete_gzip_members(data: bytes, chunk: int = 1 << 16) -> int:
    """The length of the longest prefix of `data` made of whole gzip members."""
    view, position, end = memoryview(data), 0, 0
    while position < len(data):
        member = zlib.decompressobj(wbits=31)
        try:
            while not member.eof and position < len(data):
                piece = view[position:position + chunk]
                member.decompress(piece)
                position += len(piece)
        except zlib.error:
            break
        if not member.eof:
            break
        position -= len(member.unused_data)
        end = position
    return end
