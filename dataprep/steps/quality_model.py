"""The trained quality classifier as a prepare step (model from `tokenmill quality train`, dataprep/quality.py).

Every document gets a `quality_score` column (P(positive) under the model of its language, or the
multilingual one), kept and removed alike. A document is kept when

- `top_fraction` is 0 (default): its score is at least `threshold`;
- `top_fraction` is above 0: it is among the best `top_fraction` of its language, ranked within the
  input shard the step sees (shards are fixed, so the decision is deterministic; ties go by order).

A removed document carries the reason 'quality_model:threshold' or 'quality_model:top_fraction' and its
score. A document in a language the model directory has no model for (and no multilingual one) is kept
with an empty score and counted as 'unscored'. Off by default: it needs a model.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from dataprep.quality import load_model
from dataprep.registry import register_step
from dataprep.step import RemoveCallback, Step, stored_signals
from dataprep.text import base_language, prepare_views
from tokenmill.documents import Document
from tokenmill.errors import ConfigError

SCORE = "quality_score"
BATCH = 256  # documents scored together (one prepare_views pass; a score does not depend on the batch)


@dataclass
class QualityModelConfig:
    model: str = ""  # directory written by `tokenmill quality train` (required when the step runs)
    threshold: float = 0.5  # keep documents scoring at least this
    top_fraction: float = 0.0  # > 0: keep this best fraction of each language instead (threshold ignored)

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"quality_model.threshold must be within [0, 1], got {self.threshold}")
        if not 0.0 <= self.top_fraction <= 1.0:
            raise ValueError(f"quality_model.top_fraction must be within [0, 1], got {self.top_fraction}")


def kept_by_rank(scores: list[float], fraction: float) -> list[bool]:
    """The best ceil(fraction * n) of `scores` (stable: the earlier of equal scores first)."""
    keep = math.ceil(fraction * len(scores) - 1e-9)
    ranked = sorted(range(len(scores)), key=lambda i: -scores[i])
    chosen = set(ranked[:keep])
    return [i in chosen for i in range(len(scores))]


@register_step("quality_model", config=QualityModelConfig, group="filter", order=47, default=False,
               help="trained quality classifier (quality_score column)")
class QualityModelFilter(Step):
    """Scores documents with a trained classifier; keeps by threshold or top fraction per language."""

    def __init__(self, config: QualityModelConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        if not config.model:
            raise ConfigError("prepare.quality_model.model: no model directory (train one: tokenmill quality train)")
        self.config = config
        self.unscored = 0
        self.scored: Counter = Counter()  # language → documents scored

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        scored = self.scored_documents(docs)
        ranked = self.config.top_fraction > 0
        for doc, kept in self.by_rank(list(scored)) if ranked else self.by_threshold(scored):
            if kept:
                self.documents_out += 1
                yield doc
            else:
                self.remove(doc, "quality_model:top_fraction" if ranked else "quality_model:threshold")

    def by_threshold(self, docs: Iterable[Document]) -> Iterator[tuple[Document, bool]]:
        for doc in docs:
            score = doc.meta[SCORE]
            yield doc, score is None or score >= self.config.threshold

    def by_rank(self, docs: list[Document]) -> list[tuple[Document, bool]]:
        """Each language's best `top_fraction` of `docs` kept (unscored documents kept too)."""
        by_language: dict[str | None, list[int]] = defaultdict(list)
        for i, doc in enumerate(docs):
            if doc.meta[SCORE] is not None:
                by_language[base_language(doc.meta.get("lang"))].append(i)
        keep = [True] * len(docs)
        for indices in by_language.values():
            for i, kept in zip(indices, kept_by_rank([docs[i].meta[SCORE] for i in indices], self.config.top_fraction)):
                keep[i] = kept
        return list(zip(docs, keep))

    def scored_documents(self, docs: Iterable[Document]) -> Iterator[Document]:
        """`docs`, counted in, each with its `quality_score` (None: no model for its language)."""
        model = load_model(self.config.model)
        batch: list[Document] = []
        for doc in docs:
            self.documents_in += 1
            batch.append(doc)
            if len(batch) == BATCH:
                yield from self.scored_batch(model, batch)
                batch = []
        yield from self.scored_batch(model, batch)

    def scored_batch(self, model: Any, batch: list[Document]) -> list[Document]:
        groups: dict[Any, list[Document]] = defaultdict(list)
        for doc in batch:
            stored = stored_signals(doc, (SCORE,)) if self.replay else None  # tokenmill select: scored before
            if stored and stored[SCORE] is not None:
                doc.meta[SCORE] = stored[SCORE]
                self.scored[base_language(doc.meta.get("lang"))] += 1
                continue
            groups[model.scorer(base_language(doc.meta.get("lang")))].append(doc)
        # the word ids of every document to score in one numpy pass (the views the Gopher rules filled, if
        # they ran and the text is unchanged since)
        scoring = [d for scorer, docs in groups.items() if scorer is not None for d in docs]
        views = dict(zip(map(id, scoring), prepare_views(scoring)))
        for scorer, docs in groups.items():
            scores = scorer.score_views([views[id(d)] for d in docs]) if scorer is not None else [None] * len(docs)
            for doc, score in zip(docs, scores):
                doc.meta[SCORE] = None if score is None else round(float(score), 6)
                self.unscored += score is None
                self.scored[base_language(doc.meta.get("lang"))] += score is not None
        return batch

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "unscored": self.unscored, "scored": dict(sorted(self.scored.items(), key=str))}
