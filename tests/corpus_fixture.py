"""Corpus versions without crawling: a crawl output written directly, prepared, committed and published."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from pipeline_fixture import run

TEXTS = [
    "The history of the city begins with a small market on the river and grows with every bridge built.",
    "تاریخ این شهر با یک بازار کوچک در کنار رودخانه آغاز می‌شود و با هر پل تازه بزرگ‌تر می‌شود.",
    "Historia miasta zaczyna się od małego targu nad rzeką i rośnie z każdym nowym mostem.",
    "A second page about the harbour, its ships and the people who built the old lighthouse.",
]


def write_crawl(project: Path, texts: list[str]) -> None:
    """A crawl output as the crawl stage writes it (documents shards and stats.json), without crawling."""
    from tokenmill.documents import Document, ShardWriter
    from tokenmill.stage import write_json

    crawl = project / "data/crawl"
    shutil.rmtree(crawl, ignore_errors=True)
    with ShardWriter(crawl / "documents") as writer:
        writer.write_all(Document(id=f"tiny/{i}", text=text, meta={"source": "tiny", "url": f"http://tiny/{i}"})
                         for i, text in enumerate(texts))
    write_json(crawl / "stats.json", {"stage": "crawl", "documents_out": len(texts),
                                      "sources": {"tiny": {"pages_fetched": len(texts), "documents": len(texts)}}})


def prepare_and_publish(project: Path, texts: list[str]):
    from pipeline import corpus, stages
    from pipeline.params import load_params

    write_crawl(project, texts)
    params = load_params("params.yaml")
    stages.prepare(params)
    run([sys.executable, "-m", "dvc", "commit", "-q", "--force", "crawl", "prepare"], project)
    return corpus.publish(params)
