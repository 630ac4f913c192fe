"""One view of a document's text that every rule shares: lines, paragraphs and words, split once.

`view(doc)` is cached on the document (keyed by its text, so a step that rewrites the text gets a
fresh view). Words are split per language: whitespace tokens with edge punctuation stripped for
languages written with spaces (en, fa, pl and the fallback), one word per ideograph/kana for
Chinese and Japanese, Thai/Lao/Khmer/Burmese runs as they stand. Tokens with no letter or digit
('-', '#', '…') are not words (datatrove's "non-symbol words").
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Callable

import numpy as np

from dataprep.minhash import span_hashes
from tokenmill.documents import Document

# A word: from the first to the last letter/digit of a whitespace token ('(hello),' → 'hello').
SPACED_WORD = re.compile(r"[^\W_](?:\S*[^\W_])?")
# Chinese/Japanese: each Han/kana character is a word; other runs as above.
CJK_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
PARAGRAPH_BREAK = re.compile(r"\n{2,}")


def split_spaced(text: str) -> list[str]:
    return SPACED_WORD.findall(text)


def split_cjk(text: str) -> list[str]:
    return CJK_WORD.findall(text)


# language → word splitter; a language not listed uses "default".
WORD_SPLITTERS: dict[str, Callable[[str], list[str]]] = {
    "default": split_spaced,
    "zh": split_cjk,
    "ja": split_cjk,
}


def base_language(lang: object) -> str | None:
    """'pl-PL' → 'pl'; None for a missing or empty code."""
    if not isinstance(lang, str) or not lang:
        return None
    return lang.split("-")[0].split("_")[0].lower()


def split_words(text: str, lang: str | None = None) -> list[str]:
    return WORD_SPLITTERS.get(lang or "default", split_spaced)(text)


ALNUM, SPACE, LETTER, CJK = 1, 2, 4, 8  # bits of `char_classes()`
_classes: np.ndarray | None = None


def char_classes() -> np.ndarray:
    """One uint8 per code point: ALNUM (re's `[^\\W_]`, str.isalnum), SPACE (`\\s`, str.isspace),
    LETTER (`[^\\W\\d_]`) and CJK (the Han/kana ranges of CJK_WORD) bits; built once (~0.1 s)."""
    global _classes
    if _classes is None:
        every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
        classes = np.zeros(0x110000, dtype=np.uint8)
        for bit, pattern in ((ALNUM, r"[^\W_]+"), (SPACE, r"\s+"), (LETTER, r"[^\W\d_]+")):
            for m in re.finditer(pattern, every):  # a few hundred runs
                classes[m.start() : m.end()] |= bit
        for lo, hi in ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)):
            classes[lo : hi + 1] |= CJK
        _classes = classes
    return _classes


def char_table(name: str) -> np.ndarray:
    """For every code point, whether it is 'alnum', 'space', 'letter' or 'cjk' (bool)."""
    bit = {"alnum": ALNUM, "space": SPACE, "letter": LETTER, "cjk": CJK}[name]
    return (char_classes() & bit).astype(bool)


def _shifted(mask: np.ndarray, fill: bool) -> np.ndarray:
    """mask moved one place right (the previous character's value), `fill` first."""
    out = np.empty_like(mask)
    if len(mask):
        out[0] = fill
        out[1:] = mask[:-1]
    return out


def spaced_spans(points: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """split_spaced as code point spans: (starts, ends, whitespace tokens). A token's word runs from
    its first to its last letter/digit; a token without one has no word."""
    starts, ends, token = _spaced_words(points, classes)
    return starts, ends, int(token[-1]) if len(token) else 0


def _spaced_words(points: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """spaced_spans' (starts, ends) and the token number (from 1) of every code point."""
    if classes is None:
        classes = char_classes()[points]
    nonspace = (classes & SPACE) == 0
    token_start = nonspace & ~_shifted(nonspace, False)
    token = np.cumsum(token_start, dtype=np.int32)  # the token number (from 1) of every character
    found = np.flatnonzero(classes & ALNUM)
    if not len(found):
        return found, found, token
    owner = token[found]
    change = np.flatnonzero(owner[1:] != owner[:-1])  # the last letter/digit of every word but the last
    starts = np.empty(len(change) + 1, dtype=found.dtype)
    starts[0], starts[1:] = found[0], found[change + 1]
    ends = np.empty(len(change) + 1, dtype=found.dtype)
    ends[:-1], ends[-1] = found[change], found[-1]
    return starts, ends + 1, token


def cjk_spans(points: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """split_cjk as code point spans: every Han/kana character, and runs of other letters/digits."""
    if classes is None:
        classes = char_classes()[points]
    cjk = (classes & CJK) != 0
    other = ((classes & ALNUM) != 0) & ~cjk
    before, after = _shifted(other, False), np.empty_like(other)
    if len(other):
        after[:-1] = other[1:]
        after[-1] = False
    starts = np.flatnonzero(cjk | (other & ~before))
    ends = np.flatnonzero(cjk | (other & ~after)) + 1
    return starts, ends


class TextView:
    """Lazily computed, cached parts of one text (in one language).

    Rules that need only word lengths, counts or identities read the array forms (`word_lengths`,
    `word_ids`, `alpha_token_count`, `token_count`): computed over the text's code points in numpy,
    no Python string per word. They agree with the lists (`words`, `spaced_words`, `tokens`) exactly
    (word ids are 64-bit hashes: equal words, equal ids)."""

    def __init__(self, text: str, lang: str | None):
        self.text = text
        self.lang = lang

    @cached_property
    def lines(self) -> list[str]:
        """Lines as split on '\\n' (empty ones included)."""
        return self.text.split("\n")

    @cached_property
    def nonempty_lines(self) -> list[str]:
        """Lines stripped of surrounding whitespace, blank ones left out."""
        return list(filter(None, map(str.strip, self.lines)))

    @cached_property
    def paragraphs(self) -> list[str]:
        text = self.text.strip()
        if "\n\n\n" not in text:  # every break is exactly two newlines: str.split does it
            return text.split("\n\n")
        return PARAGRAPH_BREAK.split(text)

    @cached_property
    def tokens(self) -> list[str]:
        """Whitespace tokens, punctuation included."""
        return self.text.split()

    @cached_property
    def words(self) -> list[str]:
        return split_words(self.text, self.lang)

    @cached_property
    def spaced_words(self) -> list[str]:
        """Words of whitespace tokens (edge punctuation stripped) whatever the language: one per token."""
        splitter = WORD_SPLITTERS.get(self.lang or "default", split_spaced)
        return self.words if splitter is split_spaced else split_spaced(self.text)

    @cached_property
    def lower_words(self) -> list[str]:
        return [w.lower() for w in self.words]

    @cached_property
    def points(self) -> np.ndarray:
        """The text's code points (uint32)."""
        return np.frombuffer(self.text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)

    @cached_property
    def classes(self) -> np.ndarray:
        """`char_classes()` bits of each code point."""
        return char_classes()[self.points]

    @cached_property
    def _spaced(self) -> tuple[np.ndarray, np.ndarray, int]:
        return spaced_spans(self.points, self.classes)

    @cached_property
    def word_spans(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(starts, ends) in code points of each of `words`; None for a splitter this module does not know."""
        splitter = WORD_SPLITTERS.get(self.lang or "default", split_spaced)
        if splitter is split_spaced:
            return self._spaced[:2]
        if splitter is split_cjk:
            return cjk_spans(self.points, self.classes)
        return None

    @cached_property
    def word_lengths(self) -> np.ndarray:
        """len() of each of `words` (int64)."""
        spans = self.word_spans
        if spans is None:
            return np.fromiter(map(len, self.words), dtype=np.int64, count=len(self.words))
        return (spans[1] - spans[0]).astype(np.int64)

    @cached_property
    def word_ids(self) -> np.ndarray:
        """One uint64 per word of `words`: equal words, equal ids."""
        spans = self.word_spans
        if spans is None:
            ids = {w: i for i, w in enumerate(dict.fromkeys(self.words))}
            return np.fromiter((ids[w] for w in self.words), dtype=np.uint64, count=len(self.words))
        return span_hashes(self.points, *spans)

    @cached_property
    def token_count(self) -> int:
        """len(tokens): whitespace tokens."""
        return self._spaced[2]

    @cached_property
    def alpha_token_count(self) -> int:
        """Whitespace tokens holding a letter (re's `[^\\W\\d_]`): their word (first to last
        letter/digit) holds all their letters."""
        starts, ends, _ = self._spaced
        if not len(starts):
            return 0
        letters = np.zeros(len(self.points) + 1, dtype=np.int32)
        np.cumsum((self.classes & LETTER) != 0, out=letters[1:])
        return int(np.count_nonzero(letters[ends] > letters[starts]))

    def count_words_in(self, vocabulary: frozenset[str] | set[str], enough: int) -> int:
        """How many of `lower_words` are in `vocabulary`, counting up to `enough` (then it stops)."""
        splitter = WORD_SPLITTERS.get(self.lang or "default", split_spaced)
        pattern = {split_spaced: SPACED_WORD, split_cjk: CJK_WORD}.get(splitter)
        words = (m.group() for m in pattern.finditer(self.text)) if pattern is not None else iter(self.words)
        found = 0
        if found >= enough:
            return found
        for word in words:
            if word.lower() in vocabulary:
                found += 1
                if found >= enough:
                    break
        return found


def prepare_views(docs: list[Document]) -> list[TextView]:
    """The views of `docs`, their array forms (`word_lengths`, `word_ids`, `token_count`,
    `alpha_token_count`) computed for all of them at once: one pass of numpy over the documents' code
    points joined by newlines (a newline ends every token, so no word spans two documents), then each
    view gets its slice. Same values as each view computes alone (hashes do not depend on position)."""
    views = [view(doc) for doc in docs]
    for splitter in (split_spaced, split_cjk):
        group = [v for v in views if "word_lengths" not in v.__dict__
                 and WORD_SPLITTERS.get(v.lang or "default", split_spaced) is splitter]
        if group:
            _fill_views(group, cjk=splitter is split_cjk)
    return views


def _fill_views(views: list[TextView], cjk: bool) -> None:
    texts = [v.text for v in views]
    points = np.frombuffer("\n".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    begins = np.zeros(len(texts), dtype=np.int64)
    np.cumsum(sizes[:-1] + 1, out=begins[1:])
    classes = char_classes()[points]
    starts, ends, token = _spaced_words(points, classes)
    # whitespace tokens per text: the token number at its last character minus the one before it
    token_at = np.zeros(len(points) + 1, dtype=np.int32)
    token_at[1:] = token
    tokens = (token_at[begins + sizes] - token_at[begins]).tolist()
    # tokens holding a letter: their word (first to last letter/digit) holds all their letters
    letters = np.zeros(len(points) + 1, dtype=np.int32)
    np.cumsum((classes & LETTER) != 0, out=letters[1:])
    alpha = np.zeros(len(starts) + 1, dtype=np.int32)
    np.cumsum(letters[ends] > letters[starts], out=alpha[1:])
    bounds = np.searchsorted(starts, np.append(begins, len(points) + 1))
    alphas = (alpha[bounds[1:]] - alpha[bounds[:-1]]).tolist()
    if cjk:
        starts, ends = cjk_spans(points, classes)
        bounds = np.searchsorted(starts, np.append(begins, len(points) + 1))
    lengths = (ends - starts).astype(np.int64)
    ids = span_hashes(points, starts, ends)
    cut = bounds.tolist()
    for i, v in enumerate(views):
        lo, hi = cut[i], cut[i + 1]
        v.__dict__.update(word_lengths=lengths[lo:hi], word_ids=ids[lo:hi], token_count=tokens[i],
                          alpha_token_count=alphas[i])


def view(doc: Document) -> TextView:
    """The shared view of `doc.text`, in the language identified for it (or declared, or none)."""
    cached = doc.cache.get("view")
    lang = base_language(doc.meta.get("lang"))
    if cached is None or cached.text is not doc.text or cached.lang != lang:
        cached = doc.cache["view"] = TextView(doc.text, lang)
    return cached
