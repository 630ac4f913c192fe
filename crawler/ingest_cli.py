"""The arguments of `tokenmill ingest` (crawler/ingest.py), apart from it: the CLI builds its parser
without loading the ingest's libraries."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "read web archives (WARC, WET; files, directories, s3:// URLs, warc.paths.gz listings) into documents"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a WARC/WET file (.warc, .warc.gz, .wet, .wet.gz), a directory of them, an s3:// URL of "
                        "either, or a listing like Common Crawl's warc.paths.gz (one path a line)")
    p.add_argument("--out", type=Path, required=True, help="output directory: documents/ and stats.json, as a crawl's")
    p.add_argument("--workers", type=int, default=1,
                   help="archive files read at once, each in its own process (default: 1; "
                        "prepare.dask.address set: its Dask workers instead)")
    p.add_argument("--limit", type=int, help="read only the first N archive files")
    p.add_argument("--base-url", help="what relative paths in a listing are joined to (e.g. s3://commoncrawl "
                                      "or https://data.commoncrawl.org)")
    p.add_argument("--source", default="warc", help="source name on the documents (`<source>/<hash>` ids; default: warc)")
