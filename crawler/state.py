"""The files of a crawl in progress, in `<out>.partial/`, shared by the parent and the Scrapy child.

    job.json                   what the child crawls: sources (resolved), settings, served ports
    warc/<source>-NNNNN.warc.gz  raw responses, one file per run of the child (may end in orphans)
    state/<source>/pages.jsonl   one line per URL tried, appended and flushed after its WARC record
    state/<source>/jobdir/       Scrapy's JOBDIR (request queue and seen-set)
    state/<source>/open          present while a crawl runs; left behind when the JOBDIR may be stale
    state/<source>/closed.json   why the last run of the source's spider stopped
    previous/                  for a recrawl: the last crawl's page index and WARC (hard links)
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
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

    @property
    def previous_dir(self) -> Path:
        """The previous crawl's page index and WARC, linked here for an incremental recrawl."""
        return self.root / "previous"

    def previous_pages(self, source: str) -> Path:
        return self.previous_dir / f"{source}.pages.jsonl.gz"

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
        # each run writes a WARC file of its own; records of earlier runs are found through the
        # page lines that point at them, so a resume never reads (or cuts) a WARC file
        self.warc_dir.mkdir(parents=True, exist_ok=True)

    def next_warc(self, source: str) -> Path:
        runs = len(list(self.warc_dir.glob(f"{source}-*.warc.gz")))
        return self.warc_dir / f"{source}-{runs:05d}.warc.gz"


def read_index(path: Path) -> Iterator[dict[str, Any]]:
    """The page records of a finished crawl (<out>/pages/<source>.jsonl.gz)."""
    if not path.exists():
        return
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            yield json.loads(line)


def carried_page(record: dict[str, Any]) -> dict[str, Any]:
    """A page record of the last crawl, kept as it is: its WARC record is in that crawl's file
    (crawler.run.write_warc copies it from there)."""
    return {**record, "warc": {**record["warc"], "previous": True}} if record.get("warc") else record


def read_pages(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a pages.jsonl, skipping a last line cut short by a kill."""
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break
            yield json.loads(line)


def truncate_partial_line(path: Path, chunk: int = 1 << 16) -> None:
    """Cut a last line that a kill left without its newline, reading only the file's tail."""
    if not path.exists():
        return
    with open(path, "r+b") as handle:
        end = handle.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - chunk)
            handle.seek(start)
            block = handle.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            position = start
        else:
            cut = 0
        if cut != end:
            handle.truncate(cut)
