"""One view of a document's text that every rule shares: lines, paragraphs and words, split once.

`view(doc)` is cached on the document (keyed by its text, so a step that rewrites the text gets a
fresh view). Words are split per language: whitespace tokens with edge punctuation stripped for
languages written with spaces (en, fa, pl and the fallback), one word per ideograph/kana for
Chinese and Japanese, Thai/Lao/Khmer/Burmese runs as they stand. Tokens with no letter or digit
('-', '#', '…') are not words (datatrove's "non-symbol words").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from dataprep.minhash import mix64, span_hashes
from tokenmill.documents import Document

# A word: from the first to the last letter/digit of a whitespace token ('(hello),' → 'hello').
SPACED_WORD = re.compile(r"[^\W_](?:\S*[^\W_])?")
# Chinese/Japanese: each Han/kana character is a word; other runs as above.
CJK_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
PARAGRAPH_BREAK = re.compile(r"\n{2,}")
BULLETS = ("•", "-", "*", "·", "‣", "◦", "▪", "–", "—", "➢", "►")  # a line starting with one is a bullet line
ELLIPSES = ("...", "…")  # a line ending with one is an ellipsis line


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


ALNUM, SPACE, LETTER, CJK, MARK, NEWLINE = 1, 2, 4, 8, 16, 32  # bits of `char_classes()`
_classes: np.ndarray | None = None


def char_classes() -> np.ndarray:
    """One uint8 per code point: ALNUM (re's `[^\\W_]`, str.isalnum), SPACE (`\\s`, str.isspace),
    LETTER (`[^\\W\\d_]`), CJK (the Han/kana ranges of CJK_WORD), MARK ('#', '.', '…': the Gopher symbols)
    and NEWLINE ('\\n') bits; built once (~0.05 s)."""
    global _classes
    if _classes is None:
        every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
        classes = np.zeros(0x110000, dtype=np.uint8)
        for bit, pattern in ((ALNUM, r"[^\W_]+"), (SPACE, r"\s+"), (LETTER, r"[^\W\d_]+")):
            for m in re.finditer(pattern, every):  # a few hundred runs
                classes[m.start() : m.end()] |= bit
        for lo, hi in ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF)):
            classes[lo : hi + 1] |= CJK
        classes[[ord("#"), ord("."), ord("…")]] |= MARK
        classes[ord("\n")] |= NEWLINE
        _classes = classes
    return _classes


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
    nearly all; the spans still undecided after FEW_STEPS characters are checked on their own (a few)
    or by a running count over the whole array (many)."""
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
    if len(left) * 1024 > len(classes):  # many long spans: a count of `bit` over the whole array is cheaper
        total = np.zeros(len(classes) + 1, dtype=np.int64)
        np.cumsum((classes & bit) != 0, out=total[1:])
        found[left] = total[hi[left]] > total[at]
    else:
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


def cjk_spans(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """split_cjk as code point spans over the code points' `char_classes()`: every Han/kana
    character, and runs of other letters/digits."""
    cjk = (classes & CJK) != 0
    other = ((classes & ALNUM) != 0) & ~cjk
    before, after = _shifted(other, False), np.empty_like(other)
    if len(other):
        after[:-1] = other[1:]
        after[-1] = False
    starts = np.flatnonzero(cjk | (other & ~before))
    ends = np.flatnonzero(cjk | (other & ~after)) + 1
    return starts, ends


class BatchField:
    """A TextView attribute that `_fill_views` computes for a whole batch of views and stores on each
    (as cached_property stores its value): a view asked alone is filled as a batch of one."""

    def __init__(self, doc: str):
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, v: "TextView | None", owner: type | None = None):
        if v is None:
            return self
        if self.name not in v.__dict__:
            _fill_views([v], WORD_SPLITTERS.get(v.lang or "default", split_spaced))
        return v.__dict__[self.name]


class TextView:
    """Lazily computed, cached parts of one text (in one language).

    Rules that need only word lengths, counts or identities read the array forms (`word_lengths`,
    `word_ids`, `word_chars`, `alpha_token_count`, `token_count`) and the line, paragraph and symbol
    counts (`nonempty_line_count`, `bullet_line_count`, `ellipsis_line_count`, `line_repeats`,
    `paragraph_repeats`, `hash_count`, `ellipsis_count`): computed over the code points of a whole
    batch in numpy (`prepare_views`), no Python string per word or line. They agree with the lists
    (`words`, `spaced_words`, `tokens`, `lines`, `nonempty_lines`, `paragraphs`) exactly (word, line
    and paragraph identities are 64-bit hashes: equal strings, equal hashes; different ones collide
    with probability about 2^-64 per pair)."""

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

    # The array forms and counts below are computed for a whole batch at once (`prepare_views`); a view
    # asked alone is a batch of one.

    word_lengths: np.ndarray = BatchField("len() of each of `words` (int64).")
    word_ids: np.ndarray = BatchField("One uint64 per word of `words`: equal words, equal ids.")
    word_chars: int = BatchField("sum(word_lengths).")
    token_count: int = BatchField("len(tokens): whitespace tokens.")
    alpha_token_count: int = BatchField(
        """Whitespace tokens holding a letter (re's `[^\\W\\d_]`): their word (first to last
        letter/digit) holds all their letters.""")
    nonempty_line_count: int = BatchField("len(nonempty_lines).")
    bullet_line_count: int = BatchField("How many of `nonempty_lines` start with one of BULLETS.")
    ellipsis_line_count: int = BatchField("How many of `nonempty_lines` end with one of ELLIPSES.")
    hash_count: int = BatchField("text.count('#').")
    ellipsis_count: int = BatchField("text.count('...') + text.count('…').")
    line_repeats: tuple[int, int, int] = BatchField(
        """(lines, lines that repeat an earlier line, characters in those repeats) over the non-empty
        `lines` (as they stand, '' left out): every line but the first occurrence of each distinct one
        is a repeat.""")
    paragraph_repeats: tuple[int, int, int] = BatchField("As `line_repeats`, over `paragraphs`.")

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
    """The views of `docs`, their array forms and counts (`word_lengths`, `word_ids`, `token_count`,
    `alpha_token_count`, the line and paragraph counts) computed for all of them at once: one pass of
    numpy over the documents' code points joined by newlines (a newline ends every token and line, so
    none spans two documents), then each view gets its slice. Same values as each view computes alone
    (hashes do not depend on position)."""
    views = [view(doc) for doc in docs]
    groups: dict[Callable, list[TextView]] = {}
    for v in views:
        if "word_lengths" not in v.__dict__:
            groups.setdefault(WORD_SPLITTERS.get(v.lang or "default", split_spaced), []).append(v)
    for splitter, group in groups.items():
        _fill_views(group, splitter)
    return views


_BULLET_POINTS = np.zeros(max(map(ord, BULLETS)) + 2, dtype=bool)  # code point (the last: any above) → a bullet?
_BULLET_POINTS[list(map(ord, BULLETS))] = True
_DOT, _ELLIPSIS, _HASH = ord("."), ord("…"), ord("#")


@dataclass
class _Batch:
    """The texts of a batch laid end to end as code points, with what every section below shares."""

    points: np.ndarray  # code points: newlines before, between and after the texts
    begins: np.ndarray  # where each text starts; [-1]: len(points)
    classes: np.ndarray  # each point's character classes (SPACE, letters, MARK, NEWLINE...)
    token_starts: np.ndarray = None  # whitespace tokens
    token_ends: np.ndarray = None
    token_at: np.ndarray = None  # each text's first token
    newlines: np.ndarray = None
    marks: np.ndarray = None  # '#', '.', '…'
    line_at: np.ndarray = None  # the newline before each text (and the final one)


def _fill_views(views: list[TextView], splitter: Callable[[str], list[str]]) -> None:
    """Every array form and count of `views` (all in a language split by `splitter`)."""
    batch = _lay_out([v.text for v in views])
    tokens = _tokens(batch)
    starts, ends, word_at, alpha = _words(batch, splitter)
    lines = _lines(batch)
    para_starts, para_ends, para_at = _paragraphs(batch)
    hash_marks, ellipsis_marks = _mark_counts(batch)
    # one hash per word, line and paragraph: equal strings, equal hashes
    hashes = span_hashes(batch.points, np.concatenate((starts, lines["starts"], para_starts)),
                         np.concatenate((ends, lines["ends"], para_ends)))
    words, n_lines = len(starts), len(lines["starts"])
    line_repeats = _repeats(hashes[words : words + n_lines], lines["ends"] - lines["starts"], lines["filled_at"])
    para_repeats = _repeats(hashes[words + n_lines :], para_ends - para_starts, para_at)
    counts = dict(token_count=tokens, alpha_token_count=alpha, nonempty_line_count=lines["nonempty"],
                  bullet_line_count=lines["bullets"], ellipsis_line_count=lines["ellipses"], hash_count=hash_marks,
                  ellipsis_count=ellipsis_marks, line_repeats=line_repeats)
    _assign(views, splitter, (ends - starts).astype(np.int64), hashes[:words], word_at, counts, para_repeats)


def _lay_out(texts: list[str]) -> _Batch:
    count = len(texts)
    # newlines before, between and after the texts: every token and line ends at a text's end
    points = np.frombuffer("\n".join(["", *texts, ""]).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    begins = np.ones(count + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, texts), dtype=np.int64, count=count) + 1, out=begins[1:])
    begins[1:] += 1
    return _Batch(points, begins, np.take(char_classes(), points))


def _tokens(batch: _Batch) -> list[int]:
    """Whitespace tokens: from each space-to-nonspace edge to the next nonspace-to-space one."""
    space = batch.classes & SPACE
    edges = np.flatnonzero(space[1:] != space[:-1]) + 1
    batch.token_starts, batch.token_ends = edges[0::2], edges[1::2]
    batch.token_at = np.searchsorted(batch.token_starts, batch.begins)
    return np.diff(batch.token_at).tolist()


def _words(batch: _Batch, splitter: Callable[[str], list[str]]):
    """Word spans and where each text's start, and the tokens holding a letter per text (their word holds
    all their letters)."""
    starts, ends, letter = _spaced_words(batch.classes)
    word_at = np.searchsorted(starts, batch.begins)
    alpha = _per_text(letter, word_at).tolist()
    if splitter is split_cjk:
        starts, ends = cjk_spans(batch.classes)
        word_at = np.searchsorted(starts, batch.begins)
    elif splitter is not split_spaced:  # a splitter given as a function only: its words as listed
        starts = ends = np.zeros(0, dtype=np.int64)
        word_at = np.zeros(len(batch.begins), dtype=np.int64)
    return starts, ends, word_at, alpha


def _lines(batch: _Batch) -> dict:
    """Lines lie between consecutive newlines; a line's first and last non-whitespace characters are the
    first character of its first token and the last of its last one."""
    points, token_starts, token_ends = batch.points, batch.token_starts, batch.token_ends
    marked = np.flatnonzero(batch.classes >= MARK)  # MARK and NEWLINE are the highest bits
    newline = batch.classes[marked] >= NEWLINE
    newlines = batch.newlines = marked[newline]
    batch.marks = marked[~newline]
    line_at = batch.line_at = np.searchsorted(newlines, batch.begins - 1)
    first_token = np.searchsorted(token_starts, newlines)  # of the line after each newline
    nonempty = np.flatnonzero(first_token[1:] > first_token[:-1])  # lines holding a token
    first = token_starts[first_token[nonempty]]
    last = token_ends[first_token[nonempty + 1] - 1] - 1
    bullet = np.take(_BULLET_POINTS, points[first], mode="clip")
    ellipsis = (points[last] == _ELLIPSIS) | ((last - first >= 2) & (points[last] == _DOT)
                                             & (points[last - 1] == _DOT) & (points[last - 2] == _DOT))
    nonempty_at = np.searchsorted(nonempty, line_at)
    filled = np.flatnonzero(newlines[1:] - newlines[:-1] > 1)  # lines that are not empty strings
    return {"nonempty": np.diff(nonempty_at).tolist(), "bullets": _per_text(bullet, nonempty_at).tolist(),
            "ellipses": _per_text(ellipsis, nonempty_at).tolist(), "starts": newlines[filled] + 1,
            "ends": newlines[filled + 1], "filled_at": np.searchsorted(filled, line_at)}


def _paragraphs(batch: _Batch):
    """Paragraph spans: the stripped text cut at every run of two or more newlines inside it."""
    token_at, newlines = batch.token_at, batch.newlines
    has_tokens = np.flatnonzero(token_at[1:] > token_at[:-1])
    stripped_starts = batch.token_starts[token_at[has_tokens]]
    stripped_ends = batch.token_ends[token_at[has_tokens + 1] - 1]
    together = np.zeros(len(newlines) + 1, dtype=bool)
    np.equal(newlines[1:], newlines[:-1] + 1, out=together[1:-1])  # [j]: newline j - 1 and j are adjacent
    runs = np.flatnonzero(together[1:] != together[:-1])
    break_starts, break_ends = newlines[runs[0::2]], newlines[runs[1::2]] + 1
    owner = np.searchsorted(has_tokens, np.searchsorted(batch.begins, break_starts, side="right") - 1)
    owner = np.minimum(owner, max(len(has_tokens) - 1, 0))
    inside = np.zeros(len(break_starts), dtype=bool)
    if len(has_tokens):
        inside = (break_starts > stripped_starts[owner]) & (break_ends < stripped_ends[owner])
    para_starts = np.sort(np.concatenate((stripped_starts, break_ends[inside])))
    para_ends = np.sort(np.concatenate((break_starts[inside], stripped_ends)))
    return para_starts, para_ends, np.searchsorted(para_starts, batch.begins)


def _mark_counts(batch: _Batch) -> tuple[list[int], list[int]]:
    """text.count('#') and text.count('...') + text.count('…'): a run of k dots holds k // 3 '...'."""
    marks, begins = batch.marks, batch.begins
    mark = batch.points[marks]
    hash_marks = np.diff(np.searchsorted(marks[mark == _HASH], begins)).tolist()
    ellipsis_marks = np.diff(np.searchsorted(marks[mark == _ELLIPSIS], begins))
    dots = marks[mark == _DOT]
    if len(dots):
        run = np.flatnonzero(np.concatenate(([True], dots[1:] != dots[:-1] + 1, [True])))
        ellipsis_marks += _per_text(np.diff(run) // 3, np.searchsorted(dots[run[:-1]], begins))
    return hash_marks, ellipsis_marks.tolist()


def _assign(views: list[TextView], splitter, lengths: np.ndarray, ids: np.ndarray, word_at: np.ndarray,
            counts: dict[str, list], para_repeats: list) -> None:
    """Each view's slice of the batch's arrays and its counts."""
    chars = _per_text(lengths, word_at).tolist()
    cut = word_at.tolist()
    known_splitter = splitter is split_spaced or splitter is split_cjk
    for i, v in enumerate(views):
        if known_splitter:
            word_lengths, word_ids, word_chars = lengths[cut[i] : cut[i + 1]], ids[cut[i] : cut[i + 1]], chars[i]
        else:
            known = {w: k for k, w in enumerate(dict.fromkeys(v.words))}
            word_ids = np.fromiter((known[w] for w in v.words), dtype=np.uint64, count=len(v.words))
            word_lengths = np.fromiter(map(len, v.words), dtype=np.int64, count=len(v.words))
            word_chars = int(word_lengths.sum())
        v.__dict__.update(word_lengths=word_lengths, word_ids=word_ids, word_chars=word_chars,
                          **{name: values[i] for name, values in counts.items()},
                          # a text without tokens strips to '': one empty paragraph
                          paragraph_repeats=para_repeats[i] if counts["token_count"][i] else (1, 0, 0))


def _per_text(mask: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The sum of `mask` (bool or int) over each text's part, `at` being where each part starts (then the end)."""
    total = np.zeros(len(mask) + 1, dtype=np.int64)
    np.cumsum(mask, out=total[1:])
    return total[at[1:]] - total[at[:-1]]


def sort_groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, same): the indices of `keys` sorted by key, ascending among equal keys, and whether each
    sorted key but the first equals the one before it. One sort of plain integers: each key's high bits
    with its index in the low bits (cheaper than an argsort); if two different keys share their high
    bits (the check compares the whole keys) a stable argsort does it instead."""
    count = len(keys)
    bits = max(int(count - 1).bit_length(), 1)
    low = np.uint64((1 << bits) - 1)
    packed = keys & ~low
    packed |= np.arange(count, dtype=np.uint64)
    packed.sort()
    order = (packed & low).astype(np.intp)
    packed >>= np.uint64(bits)
    same = packed[1:] == packed[:-1]
    ordered = keys[order]
    if np.any(same & (ordered[1:] != ordered[:-1])):
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        same = ordered[1:] == ordered[:-1]
    return order, same


def _repeats(hashes: np.ndarray, lengths: np.ndarray, at: np.ndarray) -> list[tuple[int, int, int]]:
    """(parts, repeats, characters in repeats) of each text, as `TextView.line_repeats`, from the hashes
    and lengths of the parts, `at` being where each text's parts start (then the end)."""
    owner = np.repeat(np.arange(len(at) - 1, dtype=np.uint64), np.diff(at))
    salted = hashes ^ mix64(owner + np.uint64(1))  # equal parts of different texts told apart
    order, same = sort_groups(salted)
    repeated = order[1:][same]
    parts = np.diff(at)
    counts = np.bincount(owner[repeated].astype(np.int64), minlength=len(parts))
    chars = np.bincount(owner[repeated].astype(np.int64), weights=lengths[repeated], minlength=len(parts))
    return list(zip(parts.tolist(), counts.tolist(), chars.astype(np.int64).tolist()))


def view(doc: Document) -> TextView:
    """The shared view of `doc.text`, in the language identified for it (or declared, or none)."""
    cached = doc.cache.get("view")
    lang = base_language(doc.meta.get("lang"))
    if cached is None or cached.text is not doc.text or cached.lang != lang:
        cached = doc.cache["view"] = TextView(doc.text, lang)
    return cached
