"""Decontamination: documents sharing a word n-gram (13 by default) with an evaluation set are removed.

The evaluation set (`prepare.decontaminate.eval_path`) is a file or directory of documents (Parquet,
JSONL, as the pipeline reads) or plain text (.txt: each non-blank line is one sample). Its n-grams of
lower-cased words (the shared splitter of `dataprep.text`) are hashed once per process; a document
holding any of them is removed as 'decontaminate' and counted. A sample shorter than n words
has no n-gram and cannot contaminate (as in GPT-3's 13-gram overlap test). On by default: with no
`eval_path` it keeps every document.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback
from dataprep.text import split_words, view
from tokenmill.documents import Document, read_documents
from tokenmill.errors import ConfigError, UserError


@dataclass
class DecontaminateConfig:
    eval_path: str = ""  # file or directory of evaluation documents ("" : nothing to decontaminate against)
    ngram_size: int = 13  # words per n-gram

    def __post_init__(self) -> None:
        if self.ngram_size < 1:
            raise ValueError(f"decontaminate.ngram_size must be positive, got {self.ngram_size}")


def ngram_hashes(words: list[str], n: int) -> Iterable[int]:
    return (hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1))


def eval_texts(path: Path) -> Iterable[str]:
    """Samples of the evaluation set: lines of .txt files, else the documents' texts."""
    text_files = sorted(path.rglob("*.txt")) if path.is_dir() else [path] if path.suffix == ".txt" else []
    if not text_files:
        yield from (doc.text for doc in read_documents(path))
    for file in text_files:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise UserError(f"{file}: not UTF-8 text") from None
        yield from (line for line in lines if line.strip())


@functools.cache
def eval_ngrams(path: str, n: int) -> frozenset[int]:
    """Hashes of every n-gram of the evaluation set (cached per process)."""
    if not Path(path).exists():
        raise ConfigError(f"prepare.decontaminate.eval_path: {path}: no such file or directory")
    grams: set[int] = set()
    for text in eval_texts(Path(path)):
        grams.update(ngram_hashes([w.lower() for w in split_words(text)], n))
    return frozenset(grams)


@register_step("decontaminate", config=DecontaminateConfig, group="filter", order=48, default=True,
               help="remove documents sharing an n-gram with the evaluation set")
class Decontaminate(Filter):
    """Removes documents that contain text of the evaluation set."""

    def __init__(self, config: DecontaminateConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        if config.eval_path:
            eval_ngrams(config.eval_path, config.ngram_size)  # a bad path fails before any document

    def reject(self, doc: Document) -> str | None:
        if not self.config.eval_path:
            return None
        grams = eval_ngrams(self.config.eval_path, self.config.ngram_size)
        if not grams:
            return None
        words = view(doc).lower_words
        if any(h in grams for h in ngram_hashes(words, self.config.ngram_size)):
            return "decontaminate"
        return None

    def summary(self) -> dict[str, Any]:
        return {"decontaminated": sum(self.removed.values())}
