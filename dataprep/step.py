"""What every prepare step is: a `run(docs) -> Iterator[Document]` over a stream (datatrove style).

A step that removes a document hands it to `on_remove(doc, reason)` (the pipeline writes it to
`removed/` with the reason) and counts it; a step keeps its own counts for stats.json.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable, Iterator

from tokenmill.documents import Document

RemoveCallback = Callable[[Document, str], None]


class Step:
    """One stage of the prepare pipeline; subclasses set `name` and implement `run`."""

    name = "step"

    def __init__(self, on_remove: RemoveCallback | None = None):
        self.on_remove = on_remove
        self.documents_in = 0
        self.documents_out = 0
        self.removed: Counter = Counter()  # reason → documents

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        raise NotImplementedError

    def remove(self, doc: Document, reason: str) -> None:
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
    """A step that keeps or removes each document on its own: subclasses implement `reject`."""

    def reject(self, doc: Document) -> str | None:
        """The reason to remove `doc` (e.g. 'quality:min_words'), or None to keep it."""
        raise NotImplementedError

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self.documents_in += 1
            reason = self.reject(doc)
            if reason is None:
                self.documents_out += 1
                yield doc
            else:
                self.remove(doc, reason)
