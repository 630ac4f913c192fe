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


FEW_STEPS = 8  # characters looked at one by one (all spans at once) before a span is checked on its own


def any_in(classes: np.ndarray, bit: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Whether `classes[lo[i]:hi[i]]` has a character with `bit`, for every non-empty span (bool). Looks
    at the first character of every span at once, then the second of those still undecided, ...: gaps
    between words and words themselves are short, so a few numpy steps over ever fewer spans decide
    nearly all; a span still undecided after FEW_STEPS characters is checked on its own."""
    found = (np.take(classes, lo) & bit) != 0
    left = np.flatnonzero(~found)
    at = lo[left] + 1
    going = at < hi[left]
    left, at = left[going], at[going]
    step = 1
    while len(left) and step < FEW_STEPS:
        hit = (np.take(classes, at) & bit) != 0
        found[left[hit]] = True
        at += 1
        going = ~hit & (at < hi[left])
        left, at = left[going], at[going]
        step += 1
    for i, a in zip(left.tolist(), at.tolist()):
        found[i] = bool(np.any(classes[a : hi[i]] & bit))
    return found


def _spaced_words(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """split_spaced as code point spans, over `classes` that begin and end with a whitespace character:
    (starts, ends, whether the word holds a letter). A word runs from the first to the last letter/digit
    of a whitespace token: runs of letters/digits joined by the gaps between them that hold no
    whitespace."""
    alnum = classes & ALNUM
    edges = np.flatnonzero(alnum[1:] != alnum[:-1]) + 1  # where each run of letters/digits starts, ends
    run_starts, run_ends = edges[0::2], edges[1::2]
    if not len(run_starts):
        return run_starts, run_ends, np.zeros(0, dtype=bool)
    split = any_in(classes, SPACE, run_ends[:-1], run_starts[1:])  # a gap with whitespace ends a word
    starts = run_starts[np.concatenate(([True], split))]
    ends = run_ends[np.concatenate((split, [True]))]
    return starts, ends, any_in(classes, LETTER, starts, ends)


def _padded_classes(points: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """`char_classes()` of `points` with a whitespace character before and after."""
    out = np.empty(len(points) + 2, dtype=np.uint8)
    out[0] = out[-1] = SPACE
    if classes is None:
        np.take(char_classes(), points, out=out[1:-1])
    else:
        out[1:-1] = classes
    return out


def _token_starts(classes: np.ndarray) -> np.ndarray:
    """Whether a whitespace token starts at each character after the first (bool, one shorter)."""
    space = classes & SPACE
    return space[:-1] > space[1:]


def spaced_spans(points: np.ndarray, classes: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """split_spaced as code point spans: (starts, ends, whitespace tokens). A token's word runs from
    its first to its last letter/digit; a token without one has no word."""
    padded = _padded_classes(points, classes)
    starts, ends, _ = _spaced_words(padded)
    return starts - 1, ends - 1, int(np.count_nonzero(_token_starts(padded)))


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
        return np.take(char_classes(), self.points)

    @cached_property
    def _spaced(self) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(word starts, word ends, whitespace tokens, tokens holding a letter)."""
        padded = _padded_classes(self.points, self.classes)
        starts, ends, letter = _spaced_words(padded)
        tokens = int(np.count_nonzero(_token_starts(padded)))
        return starts - 1, ends - 1, tokens, int(np.count_nonzero(letter))

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
        return self._spaced[3]

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
    # newlines before, between and after the texts: every token ends at a text's end
    points = np.frombuffer("\n".join(["", *texts, ""]).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    sizes = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    begins = np.ones(len(texts) + 1, dtype=np.int64)
    np.cumsum(sizes + 1, out=begins[1:])
    begins[1:] += 1  # begins[i]: where text i starts; begins[-1]: past the final newline
    classes = np.take(char_classes(), points)
    starts, ends, letter = _spaced_words(classes)
    token_start = _token_starts(classes)  # [p]: a token starts at p + 1
    cut = begins.tolist()
    tokens = [int(np.count_nonzero(token_start[cut[i] - 1 : cut[i + 1] - 2])) for i in range(len(texts))]
    # tokens holding a letter: their word (first to last letter/digit) holds all their letters
    bounds = np.searchsorted(starts, begins).tolist()
    alphas = [int(np.count_nonzero(letter[bounds[i] : bounds[i + 1]])) for i in range(len(texts))]
    if cjk:
        starts, ends = cjk_spans(points, classes)
        bounds = np.searchsorted(starts, begins).tolist()
    lengths = (ends - starts).astype(np.int64)
    ids = span_hashes(points, starts, ends)
    for i, v in enumerate(views):
        lo, hi = bounds[i], bounds[i + 1]
        v.__dict__.update(word_lengths=lengths[lo:hi], word_ids=ids[lo:hi], token_count=tokens[i],
                          alpha_token_count=alphas[i])


def view(doc: Document) -> TextView:
    """The shared view of `doc.text`, in the language identified for it (or declared, or none)."""
    cached = doc.cache.get("view")
    lang = base_language(doc.meta.get("lang"))
    if cached is None or cached.text is not doc.text or cached.lang != lang:
        cached = doc.cache["view"] = TextView(doc.text, lang)
    return cached
