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
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter, not_

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback
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


@dataclass
class QualityConfig(QualityThresholds):
    # language code → thresholds replacing the ones above for documents in that language
    languages: dict[str, QualityThresholds] = field(default_factory=dict)

    def for_language(self, lang: str | None) -> QualityThresholds:
        return self.languages.get(lang or "", self)


@register_step("quality", config=QualityConfig, group="filter", order=30, help="Gopher quality rules")
class GopherQuality(Filter):
    """Removes documents that do not look like prose: too short/long, symbol-heavy, list-like."""

    batch_size = 16

    def __init__(self, config: QualityConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config

    def reject_batch(self, docs: list[Document]) -> list[str | None]:
        # the views' arrays and counts for the whole batch in one pass of numpy
        return list(map(self.judge, prepare_views(docs)))

    def judge(self, v: TextView) -> str | None:
        """The reason to remove the document of view `v`, or None. Word counts, lengths and letters,
        line and symbol counts come from the view's arrays (no Python string per word or line)."""
        c = self.config.for_language(v.lang)
        n_words = len(v.word_lengths)
        if n_words < c.min_words:
            return "quality:min_words"
        if n_words > c.max_words:
            return "quality:max_words"
        mean_length = v.word_chars / n_words
        if mean_length < c.min_mean_word_length:
            return "quality:min_mean_word_length"
        if mean_length > c.max_mean_word_length:
            return "quality:max_mean_word_length"
        if v.hash_count / n_words > c.max_symbol_word_ratio:  # text.count('#')
            return "quality:symbol_word_ratio"
        if v.ellipsis_count / n_words > c.max_symbol_word_ratio:  # text.count('...') + text.count('…')
            return "quality:symbol_word_ratio"
        lines = v.nonempty_line_count  # BULLETS and ELLIPSES lines counted in numpy (dataprep.text)
        if v.bullet_line_count / lines > c.max_bullet_lines:
            return "quality:bullet_lines"
        if v.ellipsis_line_count / lines > c.max_ellipsis_lines:
            return "quality:ellipsis_lines"
        if v.alpha_token_count / v.token_count < c.min_alpha_words:
            return "quality:alpha_words"
        stop_words = stop_words_for(v.lang)
        if stop_words is not None and c.min_stop_words > 0:
            if v.count_words_in(stop_words, c.min_stop_words) < c.min_stop_words:
                return "quality:stop_words"
        return None
