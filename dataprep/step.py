"""What every prepare step is: a `run(docs) -> Iterator[Document]` over a stream (datatrove style).

A step that removes a document hands it to `on_remove(doc, reason)` (the pipeline writes it to
`removed/` with the reason) and counts it; a step keeps its own counts for stats.json.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Iterator

from tokenmill.documents import Document

RemoveCallback = Callable[[Document, str], None]
STORED = "stored:"  # tokenmill select: a signal column of the earlier run, until its filter takes it back


def stored_signals(doc: Document, names: tuple[str, ...]) -> dict[str, Any] | None:
    """The earlier run's measurements `names` of `doc`, taken off it (None: it has none)."""
    if STORED + names[0] not in doc.meta:
        return None
    return {name: doc.meta.pop(STORED + name, None) for name in names}


class Step:
    """One stage of the prepare pipeline; subclasses set `name` and implement `run`."""

    name = "step"
    # prepare.keep_signals: write the measurements a filter decided on as columns (`quality_words`, ...)
    # on kept and removed documents, so `tokenmill select` can re-decide with other thresholds
    keep_signals = False
    replay = False  # tokenmill select: decide from the stored signals where a document has them

    def __init__(self, on_remove: RemoveCallback | None = None):
        self.on_remove = on_remove
        self.documents_in = 0
        self.documents_out = 0
        self.removed: Counter = Counter()  # reason → documents

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        raise NotImplementedError

    def remove(self, doc: Document, reason: str) -> None:
        if self.replay:  # the later filters' stored signals: a fresh run would not have measured them
            for name in [name for name in doc.meta if name.startswith(STORED)]:
                del doc.meta[name]
        self.removed[reason] += 1
        if self.on_remove is not None:
            self.on_remove(doc, reason)

    def stats(self) -> dict[str, Any]:
        """Counts for stats.json; subclasses add their own (language counts, clusters, ...)."""
        return {
            "documents_in": self.documents_in,
            "documents_out": self.documents_out,
            "removed": dict(sorted(self.removed.items())),
        }


class Filter(Step):
    """A step that keeps or removes each document on its own: subclasses implement `reject`, or
    `reject_batch` to judge `batch_size` documents at a time (numpy over a whole batch instead of
    many small calls per document); the decisions are the same either way. With `batch_chars`, a batch
    also ends once its texts hold that many characters: a batch's fixed cost is spread over as many
    short documents as it takes, while a batch of long ones stays small in memory."""

    batch_size = 1
    batch_chars: int | None = None

    def reject(self, doc: Document) -> str | None:
        """The reason to remove `doc` (e.g. 'quality:min_words'), or None to keep it."""
        return self.reject_batch([doc])[0]

    def reject_batch(self, docs: list[Document]) -> list[str | None]:
        """`reject` of each of `docs`."""
        return [self.reject(doc) for doc in docs]

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for batch in batched(docs, self.batch_size, self.batch_chars):
            self.documents_in += len(batch)
            for doc, reason in zip(batch, self.reject_batch(batch)):
                if reason is None:
                    self.documents_out += 1
                    yield doc
                else:
                    self.remove(doc, reason)


def batched(items: Iterable[Document], size: int, chars: int | None = None) -> Iterator[list[Document]]:
    """Lists of `size` items (the last one shorter); with `chars`, a list also ends at the item that
    brings its texts to `chars` characters."""
    batch, held = [], 0
    for item in items:
        batch.append(item)
        held += len(item.text) if chars is not None else 0
        if len(batch) >= size or (chars is not None and held >= chars):
            yield batch
            batch, held = [], 0
    if batch:
        yield batch
