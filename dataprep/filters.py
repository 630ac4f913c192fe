"""Gopher quality and repetition rules (Rae et al. 2021, appendix A; as in datatrove).

Each rule removes a document with a reason naming it, e.g. 'quality:min_words' or
'repetition:dup_5gram'. Words are whitespace tokens with leading/trailing punctuation stripped;
tokens with no letter or digit (a lone '-' or '#') are not words.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from dataprep.config import QualityConfig, RepetitionConfig
from dataprep.step import Filter, RemoveCallback
from dataprep.stopwords import stop_words_for
from tokenmill.documents import Document

EDGE_PUNCTUATION = re.compile(r"^[\W_]+|[\W_]+$")
BULLETS = ("•", "-", "*", "·", "‣", "◦", "▪", "–", "—", "➢", "►")
ELLIPSES = ("...", "…")
PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)


def split_words(text: str) -> list[str]:
    """Whitespace tokens without edge punctuation, dropping tokens that had no letter or digit."""
    words = (EDGE_PUNCTUATION.sub("", token) for token in text.split())
    return [w for w in words if w]


class GopherQuality(Filter):
    """Removes documents that do not look like prose: too short/long, symbol-heavy, list-like."""

    name = "quality"

    def __init__(self, config: QualityConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config

    def reject(self, doc: Document) -> str | None:
        c, text = self.config, doc.text
        words = split_words(text)
        n_words = len(words)
        if n_words < c.min_words:
            return "quality:min_words"
        if n_words > c.max_words:
            return "quality:max_words"
        mean_length = sum(map(len, words)) / n_words
        if mean_length < c.min_mean_word_length:
            return "quality:min_mean_word_length"
        if mean_length > c.max_mean_word_length:
            return "quality:max_mean_word_length"
        hashes, ellipses = text.count("#"), text.count("...") + text.count("…")
        if max(hashes, ellipses) / n_words > c.max_symbol_word_ratio:
            return "quality:symbol_word_ratio"
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        if sum(line.startswith(BULLETS) for line in lines) / len(lines) > c.max_bullet_lines:
            return "quality:bullet_lines"
        if sum(line.endswith(ELLIPSES) for line in lines) / len(lines) > c.max_ellipsis_lines:
            return "quality:ellipsis_lines"
        tokens = text.split()
        if sum(any(ch.isalpha() for ch in t) for t in tokens) / len(tokens) < c.min_alpha_words:
            return "quality:alpha_words"
        stop_words = stop_words_for(doc.meta.get("lang"))
        if stop_words is not None and c.min_stop_words > 0:
            if sum(w.lower() in stop_words for w in words) < c.min_stop_words:
                return "quality:stop_words"
        return None


def duplicate_fractions(parts: list[str], total_chars: int) -> tuple[float, float]:
    """(fraction of parts that repeat an earlier part, fraction of characters in those repeats)."""
    seen: set[str] = set()
    dup_parts = dup_chars = 0
    for part in parts:
        if part in seen:
            dup_parts += 1
            dup_chars += len(part)
        else:
            seen.add(part)
    return dup_parts / max(len(parts), 1), dup_chars / max(total_chars, 1)


def ngrams(words: list[str], n: int) -> Iterable[tuple[str, ...]]:
    return zip(*(words[i:] for i in range(n)))


def top_ngram_char_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Characters in all occurrences of the most frequent n-gram (if it repeats), as a fraction."""
    counts = Counter(ngrams(words, n))
    if not counts:
        return 0.0
    gram, count = counts.most_common(1)[0]
    return 0.0 if count < 2 else sum(map(len, gram)) * count / max(total_chars, 1)


def dup_ngram_char_fraction(words: list[str], n: int, total_chars: int) -> float:
    """Characters in words covered by any n-gram that occurs more than once (overlaps counted once)."""
    grams = list(ngrams(words, n))
    counts = Counter(grams)
    covered = bytearray(len(words))
    for start, gram in enumerate(grams):
        if counts[gram] > 1:
            covered[start : start + n] = b"\x01" * n
    return sum(len(w) for w, hit in zip(words, covered) if hit) / max(total_chars, 1)


class GopherRepetition(Filter):
    """Removes documents that repeat themselves: duplicate lines/paragraphs and n-grams."""

    name = "repetition"

    def __init__(self, config: RepetitionConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config

    def reject(self, doc: Document) -> str | None:
        c, text = self.config, doc.text
        paragraphs = [p.strip() for p in PARAGRAPH_BREAK.split(text) if p.strip()]
        para_frac, para_char_frac = duplicate_fractions(paragraphs, len(text))
        if para_frac > c.max_dup_para_frac:
            return "repetition:dup_para_frac"
        if para_char_frac > c.max_dup_para_char_frac:
            return "repetition:dup_para_char_frac"
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        line_frac, line_char_frac = duplicate_fractions(lines, len(text))
        if line_frac > c.max_dup_line_frac:
            return "repetition:dup_line_frac"
        if line_char_frac > c.max_dup_line_char_frac:
            return "repetition:dup_line_char_frac"
        words = split_words(text)
        word_chars = sum(map(len, words))
        for n, limit in zip(TOP_NGRAM_SIZES, c.max_top_ngram_char_frac):
            if top_ngram_char_fraction(words, n, word_chars) > limit:
                return f"repetition:top_{n}gram"
        lowest_limit = min(c.max_dup_ngram_char_frac)
        for n, limit in zip(DUP_NGRAM_SIZES, c.max_dup_ngram_char_frac):
            fraction = dup_ngram_char_fraction(words, n, word_chars)
            if fraction > limit:
                return f"repetition:dup_{n}gram"
            if fraction <= lowest_limit:  # longer n-grams repeat no more than shorter ones
                break
        return None
