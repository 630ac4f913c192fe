"""Gopher quality rules (Rae et al. 2021, appendix A), as datatrove's GopherQualityFilter where faithful.

Each rule removes a document with a reason naming it ('quality:min_words'). Words come from the
shared per-document view (`dataprep.text`): whitespace tokens with edge punctuation stripped, so
'word,' is the word 'word' and a lone '-' is no word. Where this differs from datatrove on purpose:

- alpha_words: the paper's "80 % of words contain an alphabetic character" is measured over
  whitespace tokens. datatrove's word tokenizer makes every punctuation mark a token of its own, so
  ordinary prose ("Hello, world.") scores 0.5 there and is dropped for its commas; we count marks
  attached to a word as part of it, and a free-standing token such as '-' or '42' as a non-alpha word.
- bullet_lines / ellipsis_lines: fractions of non-blank lines (datatrove divides by every line,
  blank ones included, so spacing changes the decision); bullets are the usual bullet glyphs,
  not only '•' and '-'.
- stop_words: per-language lists for en, fa and pl (the rule is skipped for other languages: an
  English list would remove every page in them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from itertools import compress
from operator import itemgetter, not_
from typing import Callable

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback, stored_signals
from dataprep.stopwords import stop_words_for
from dataprep.text import TextView, prepare_views
from tokenmill.documents import Document

LETTER = re.compile(r"[^\W\d_]")


def alphabetic_tokens(words: list[str]) -> int:
    """Whitespace tokens holding a letter: a token's word (first to last letter/digit) holds its letters,
    and a token without a letter has no word or a letterless one, so count the words with a letter."""
    starts_alpha = list(map(str.isalpha, map(itemgetter(0), words)))  # most words: decided in C
    others = compress(words, map(not_, starts_alpha))
    return sum(starts_alpha) + sum(1 for w in others if LETTER.search(w))


@dataclass
class QualityThresholds:
    """The thresholds one language is judged by."""

    min_words: int = 50  # fewer words (tokens with a letter or digit) → 'quality:min_words'
    max_words: int = 100_000  # more words → 'quality:max_words'
    min_mean_word_length: float = 3.0  # mean characters per word below this → nav lists, tables of numbers
    max_mean_word_length: float = 10.0  # above this → URLs, hashes, base64
    max_symbol_word_ratio: float = 0.1  # '#' per word, and ('...' + '…') per word
    max_bullet_lines: float = 0.9  # fraction of non-blank lines starting with a bullet (• - * ...)
    max_ellipsis_lines: float = 0.3  # fraction of non-blank lines ending in '...' or '…' (truncated teasers)
    min_alpha_words: float = 0.8  # fraction of whitespace tokens that contain a letter
    min_stop_words: int = 2  # stop words of the document's language (en/fa/pl lists; rule skipped for others)

    def __post_init__(self) -> None:
        if self.min_words > self.max_words:
            raise ValueError(f"quality.min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        if self.min_mean_word_length > self.max_mean_word_length:
            raise ValueError("quality.min_mean_word_length exceeds max_mean_word_length")
        for name in ("max_bullet_lines", "max_ellipsis_lines", "min_alpha_words"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"quality.{name} must be within [0, 1], got {getattr(self, name)}")


def fineweb2_thresholds() -> dict[str, dict[str, float]]:
    """Persian and Polish as FineWeb-2 calibrated them (github.com/huggingface/fineweb-2,
    configs/fas_Arab.yml and configs/pol_Latn.yml): `min_avg_word_length`, `max_avg_word_length` and
    `max_non_alpha_words_ratio` (datatrove's name for the share of words that must hold a letter: our
    min_alpha_words). The rest stays Gopher's. English is Gopher's own (the class defaults)."""
    return {
        "fa": {"min_mean_word_length": 2.0, "max_mean_word_length": 9.0, "min_alpha_words": 0.812},
        "pl": {"min_mean_word_length": 3.0, "max_mean_word_length": 11.0, "min_alpha_words": 0.726},
    }


THRESHOLD_NAMES = tuple(f.name for f in fields(QualityThresholds))


@dataclass
class QualityConfig(QualityThresholds):
    # language code → the thresholds that differ for documents in that language (the others are the ones
    # above): FineWeb-2's for fa and pl by default
    languages: dict[str, dict[str, float]] = field(default_factory=fineweb2_thresholds)

    def __post_init__(self) -> None:
        super().__post_init__()
        for lang, overrides in self.languages.items():
            unknown = [] if isinstance(overrides, QualityThresholds) else sorted(set(overrides) - set(THRESHOLD_NAMES))
            if unknown:
                raise ValueError(f"quality.languages.{lang}: unknown threshold '{unknown[0]}'")
        self._merged: dict[tuple, QualityThresholds] = {}

    def for_language(self, lang: str | None) -> QualityThresholds:
        overrides = self.languages.get(lang or "")
        if overrides is None:
            return self
        if isinstance(overrides, QualityThresholds):  # a whole set, as Python callers may give it
            return overrides
        base = tuple(getattr(self, name) for name in THRESHOLD_NAMES)  # the top level may have changed since
        merged = self._merged.get((lang, base))
        if merged is None:
            merged = self._merged[(lang, base)] = QualityThresholds(**{**dict(zip(THRESHOLD_NAMES, base)), **overrides})
        return merged


@register_step("quality", config=QualityConfig, group="filter", order=30, help="Gopher quality rules")
class GopherQuality(Filter):
    """Removes documents that do not look like prose: too short/long, symbol-heavy, list-like."""

    # numpy over batches of about 128K characters: many short documents share one batch's fixed cost
    batch_size, batch_chars = 256, 1 << 17

    def __init__(self, config: QualityConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config

    def reject_batch(self, docs: list[Document]) -> list[str | None]:
        # the views' arrays and counts for the whole batch in one pass of numpy
        return [self.judge(v, doc) for doc, v in zip(docs, prepare_views(docs))]

    def judge(self, v: TextView, doc: Document | None = None) -> str | None:
        """The reason to remove the document of view `v`, or None. Word counts, lengths and letters,
        line and symbol counts come from the view's arrays (no Python string per word or line).
        With `keep_signals` the measurements go on the document as columns (`quality_words`, ...)."""
        stored = stored_signals(doc, SIGNALS) if self.replay and doc is not None else None  # tokenmill select
        measured = stored or signals(v, count_stop_words=self.keep_signals)
        if self.keep_signals and doc is not None:
            doc.meta.update(measured)
        stop_words = stop_words_for(v.lang)
        count = (lambda enough: v.count_words_in(stop_words, enough)) if stop_words is not None else None
        return decide(measured, self.config.for_language(v.lang), count)


SIGNALS = ("quality_words", "quality_mean_word_length", "quality_hash_ratio", "quality_ellipsis_ratio",
           "quality_bullet_lines", "quality_ellipsis_lines", "quality_alpha_words", "quality_stop_words")


def signals(v: TextView, count_stop_words: bool) -> dict[str, float | int | None]:
    """What the rules measure (ratios 0 for a text without words); stop words only when asked (a scan of
    the text: the decision counts them lazily, up to the threshold, only for documents still in)."""
    n_words, lines, tokens = len(v.word_lengths), v.nonempty_line_count, v.token_count
    stop_words = stop_words_for(v.lang)
    counted = count_stop_words and stop_words is not None
    return {
        "quality_words": n_words,
        "quality_mean_word_length": v.word_chars / n_words if n_words else 0.0,
        "quality_hash_ratio": v.hash_count / n_words if n_words else 0.0,  # text.count('#') per word
        "quality_ellipsis_ratio": v.ellipsis_count / n_words if n_words else 0.0,  # '...' and '…' per word
        "quality_bullet_lines": v.bullet_line_count / lines if lines else 0.0,
        "quality_ellipsis_lines": v.ellipsis_line_count / lines if lines else 0.0,
        "quality_alpha_words": v.alpha_token_count / tokens if tokens else 0.0,
        "quality_stop_words": v.count_words_in(stop_words, 1 << 62) if counted else None,
    }


def decide(s: dict, c: QualityThresholds, count_stop_words: Callable[[int], int] | None = None) -> str | None:
    """The Gopher decision from measurements `s`. The stop-word count is `s`'s when measured, else
    `count_stop_words(enough)` counts up to the threshold (None: the language has no list, no rule)."""
    if s["quality_words"] < c.min_words:
        return "quality:min_words"
    if s["quality_words"] > c.max_words:
        return "quality:max_words"
    if s["quality_mean_word_length"] < c.min_mean_word_length:
        return "quality:min_mean_word_length"
    if s["quality_mean_word_length"] > c.max_mean_word_length:
        return "quality:max_mean_word_length"
    if s["quality_hash_ratio"] > c.max_symbol_word_ratio or s["quality_ellipsis_ratio"] > c.max_symbol_word_ratio:
        return "quality:symbol_word_ratio"
    if s["quality_bullet_lines"] > c.max_bullet_lines:
        return "quality:bullet_lines"
    if s["quality_ellipsis_lines"] > c.max_ellipsis_lines:
        return "quality:ellipsis_lines"
    if s["quality_alpha_words"] < c.min_alpha_words:
        return "quality:alpha_words"
    found = s["quality_stop_words"]
    if found is None and count_stop_words is not None and c.min_stop_words > 0:
        found = count_stop_words(c.min_stop_words)
    if found is not None and found < c.min_stop_words:
        return "quality:stop_words"
    return None
