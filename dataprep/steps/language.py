"""Language identification with py3langid (model shipped in the package, works offline).

Writes `lang` (ISO 639-1 code, or 'und') and `lang_score` (probability). A language the page
declared (its `lang` attribute, e.g. 'pl-PL', arriving as meta `lang`) is kept as `declared_lang`,
but the decision is made on the text: the Debian handbook's pl-PL tree is mostly English.

The languages expected of a document are its source's (`source_languages`, a list the crawler
writes from the source YAML); documents without it (JSONL input) fall back to
`prepare.language.allowed`. A document in another language is removed as 'language:<code>';
its `lang` and `lang_score` stay on it (in removed/).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback, stored_signals
from dataprep.text import base_language
from tokenmill.documents import Document
from tokenmill.errors import ConfigError, UserError

UNDETERMINED = "und"
SOURCE_LANGUAGES = "source_languages"
IDENTIFIED = "language_identified"  # prepare.keep_signals: the language py3langid named, whatever its score  # document field: the languages its source is expected to be in


@dataclass
class LanguageConfig:
    allowed: list[str] = field(default_factory=lambda: ["en", "fa", "pl"])  # ISO 639-1 codes kept when a
    # document does not name its source's languages (`source_languages`)
    min_score: float = 0.5  # py3langid probability below which a document is 'und' (removed)
    max_chars: int = 20_000  # identify on the first N characters (speed; pages are decided by their start)

    def __post_init__(self) -> None:
        if not self.allowed:
            raise ValueError("language.allowed must name at least one language")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"language.min_score must be within [0, 1], got {self.min_score}")
        if self.max_chars < 1:
            raise ValueError(f"language.max_chars must be positive, got {self.max_chars}")


@functools.cache
def language_model() -> LanguageIdentifierModel:
    """One model per process (steps travel to Dask workers without it)."""
    return LanguageIdentifierModel()


def expected_languages(doc: Document, fallback: list[str]) -> set[str]:
    """The document's `source_languages` (base codes), or `fallback` when it has none."""
    value: Any = doc.meta.get(SOURCE_LANGUAGES)
    if value is None:
        return set(fallback)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise UserError(f"document {doc.id}: field '{SOURCE_LANGUAGES}' must be a list of language codes")
    return {base_language(v) for v in value if v} or set(fallback)


# float16 -> float32 by table: numpy converts halves at about 3 ns each, most of the time a short document's
# scoring took; a lookup gives the same float32 values, gather and product in less than half the time
# (the same language and score as before on all 26,648 documents of bench/dataprep.py's two corpora)
HALF_TO_FLOAT = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).astype(np.float32)


def feature_rows(table: np.ndarray):
    """`table[ids]` as float32 (what `vector @ table[ids]` computes with): of a float16 table through
    HALF_TO_FLOAT, so that the product is BLAS's float32 one on the same values."""
    if table.dtype != np.float16:
        return lambda ids: table[ids]
    bits = np.ascontiguousarray(table).view(np.uint16)
    return lambda ids: np.take(HALF_TO_FLOAT, bits[ids])


class LanguageIdentifierModel:
    """py3langid's naive Bayes model with probabilities normalised to [0, 1].

    `classify` walks py3langid's byte automaton in a Python loop, one step per byte. Its state after
    a byte depends only on the last DFA_WINDOW bytes (no state is deeper than that from the root:
    `automaton_depth`; 6 for py3langid 0.4's model), so
    `fast_classify` computes every position's state at once with DFA_WINDOW numpy gathers, then scores
    exactly as py3langid does (same features in the same order, same float32 arithmetic): the
    result is identical (tests/dataprep/test_language.py checks it), about twice as fast."""

    DFA_WINDOW = 6

    def __init__(self) -> None:
        self.model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        try:
            # a view of py3langid's own array('I') (37 MB), not a copy; states are below 2**31
            self.next_state = np.frombuffer(self.model.tk_nextmove, dtype=np.uint32)
            self.row_base = np.asarray(self.model._rowbase, dtype=np.int64)
            self.output = np.asarray(self.model.tk_output, dtype=np.int32)
            self.feature_rows = feature_rows(self.model.nb_ptc)
            self.fast = True
        except AttributeError:  # another py3langid layout: its own classify
            self.fast = False

    @property
    def languages(self) -> list[str]:
        return self.model.labels

    def identify(self, text: str) -> tuple[str, float]:
        """(language, probability); ('und', 0.0) for text without letters."""
        if not any(ch.isalpha() for ch in text):
            return UNDETERMINED, 0.0
        lang, score = self.fast_classify(text) if self.fast else self.model.classify(text)
        return lang, round(float(score), 4)

    def automaton_depth(self) -> int:
        """The largest number of bytes from the root to any state (breadth-first, about a second)."""
        depth = np.full(len(self.row_base), -1, dtype=np.int64)
        depth[0], frontier, level = 0, np.array([0]), 0
        while len(frontier):
            reached = np.unique(self.next_state[(self.row_base[frontier][:, None] + np.arange(256)).ravel()])
            frontier = reached[depth[reached] < 0]
            level += 1
            depth[frontier] = level
        return int(depth.max())

    def fast_classify(self, text: str) -> tuple[str, float]:
        model = self.model
        data = model._encode(text)
        byte = np.frombuffer(data, dtype=np.uint8).astype(np.int64)
        n = len(byte)
        state = np.zeros(n, dtype=np.int64)
        for back in range(self.DFA_WINDOW - 1, -1, -1):  # walk the last DFA_WINDOW bytes of every position
            if back < n:
                state[back:] = self.next_state[self.row_base[state[back:]] + byte[: n - back]]
        features = self.output[state]
        features = features[features >= 0]
        if len(features) == 0:
            return model.classify(text)  # no features: py3langid's own answer
        ids, first, counts = np.unique(features, return_index=True, return_counts=True)
        order = np.argsort(first, kind="stable")  # py3langid's Counter order: first occurrence
        scores = np.log1p(counts[order].astype(np.float32)) @ self.feature_rows(ids[order].astype(np.intp)) + model.nb_pc
        scores *= 1.0 / math.sqrt(len(data) or 1)
        np.exp(scores - scores.max(), out=scores)
        scores /= scores.sum()
        for i, j in model._alias_pairs:
            scores[i] += scores[j]
            scores[j] = 0.0
        best = int(scores.argmax())
        return model.nb_classes[best], float(scores[best])


@register_step("language", config=LanguageConfig, group="filter", order=20, help="language identification (py3langid)")
class LanguageFilter(Filter):
    """Keeps documents in an expected language (their source's, else `allowed`) with enough confidence."""

    def __init__(self, config: LanguageConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        unknown = sorted(set(config.allowed) - set(language_model().languages))
        if unknown:
            raise ConfigError(f"prepare.language.allowed: unknown language code '{unknown[0]}'")
        self.identified: Counter = Counter()  # language → documents (all, before filtering)

    def reject(self, doc: Document) -> str | None:
        stored = stored_signals(doc, (IDENTIFIED, "lang_score")) if self.replay else None  # tokenmill select
        if stored:
            lang, score = stored[IDENTIFIED], stored["lang_score"]
        else:
            lang, score = language_model().identify(doc.text[: self.config.max_chars])
            declared = doc.meta.get("lang")
            if declared is not None and "declared_lang" not in doc.meta:
                doc.meta["declared_lang"] = declared
        if self.keep_signals:
            doc.meta[IDENTIFIED] = lang  # before min_score turns it into 'und'
        if score < self.config.min_score:
            lang = UNDETERMINED
        doc.meta["lang"] = lang
        doc.meta["lang_score"] = score
        self.identified[lang] += 1
        if lang not in expected_languages(doc, self.config.allowed):
            return f"language:{lang}"
        return None

    def summary(self) -> dict[str, Any]:
        return {"languages": dict(sorted(self.identified.items()))}
