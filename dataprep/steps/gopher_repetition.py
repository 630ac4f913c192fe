"""Gopher repetition rules (Rae et al. 2021, table A1), computed as datatrove's GopherRepetitionFilter.

- duplicate lines / paragraphs: the fraction of lines (paragraphs) that repeat an earlier one, and
  the characters in those repeats over the text's length (the first occurrence is not counted);
- top n-gram (n = 2, 3, 4): characters of the most frequent n-gram (words joined by spaces) times its
  count, over the text's length;
- duplicated n-grams (n = 5..10): scanning left to right, an n-gram seen before adds its characters
  (words joined without spaces) and the scan jumps past it, so overlapping repeats are not counted
  twice; over the text's length. This is datatrove's `find_all_duplicate`.

Differs on purpose: words are the shared view's words (`dataprep.text`; punctuation marks are part of
their word, not words of their own as datatrove's tokenizer makes them), and a top n-gram that occurs
only once counts as 0 (it is not a repetition; datatrove counts it, which only matters for tiny texts).

How it is computed (same decisions as the plain definitions `find_duplicates`, `top_ngram_chars`,
`duplicated_ngram_chars`, tested): lines and paragraphs as hashes sorted per document (the view's
`line_repeats`, `paragraph_repeats`); n-grams as 64-bit keys of a batch of documents, grouped by one
sort per n, each n looking only where the repeats of shorter n-grams allow a repeat; exact bounds
skip what cannot change a decision (the top 3-gram where twice the largest repeated 2-gram is within
the limit; the duplicated n-gram scan where the later occurrences of the repeated n-grams cover no
more than the limit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback
from dataprep.minhash import mix64
from dataprep.text import prepare_views, sort_groups
from tokenmill.documents import Document

TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)


@dataclass
class RepetitionConfig:
    max_dup_line_frac: float = 0.30  # fraction of lines that repeat an earlier line
    max_dup_para_frac: float = 0.30  # fraction of paragraphs that repeat an earlier paragraph
    max_dup_line_char_frac: float = 0.20  # characters in repeated lines / text length
    max_dup_para_char_frac: float = 0.20  # characters in repeated paragraphs / text length
    max_top_ngram_char_frac: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])  # n = 2, 3, 4
    max_dup_ngram_char_frac: list[float] = field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    )  # n = 5, 6, 7, 8, 9, 10

    def __post_init__(self) -> None:
        if len(self.max_top_ngram_char_frac) != 3:
            raise ValueError("repetition.max_top_ngram_char_frac needs 3 values (n = 2, 3, 4)")
        if len(self.max_dup_ngram_char_frac) != 6:
            raise ValueError("repetition.max_dup_ngram_char_frac needs 6 values (n = 5..10)")


def find_duplicates(parts: list[str]) -> tuple[int, int]:
    """(parts that repeat an earlier part, characters in those repeats): every part but the first
    occurrence of each distinct one."""
    distinct = set(parts)
    return len(parts) - len(distinct), sum(map(len, parts)) - sum(map(len, distinct))


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters in all occurrences of the most frequent n-gram (space-joined), 0 if none repeats."""
    counts = Counter(zip(*(words[i:] for i in range(n))))
    if not counts:
        return 0
    gram, count = counts.most_common(1)[0]
    return 0 if count < 2 else (sum(map(len, gram)) + n - 1) * count


def duplicated_ngram_chars(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate: characters of repeated n-grams, skipping past each repeat."""
    seen: set[tuple[str, ...]] = set()
    repeated, i, last = 0, 0, len(words) - n
    while i <= last:
        gram = tuple(words[i : i + n])
        if gram in seen:
            repeated += sum(map(len, gram))
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: n-gram keys as polynomial hashes
_SQUARE = np.uint64(int(_MULTIPLIER) ** 2 % 2**64)
_CROSSING = np.uint64(0x5851F42D4C957F2D)  # mixed into the keys of n-grams that would leave their document


class NgramIndex:
    """One document's words as integer ids with n-gram keys, so each rule is a few numpy operations
    plus (for duplicated n-grams) one loop over integers instead of tuples of strings. Keys are 64-bit
    polynomial hashes of the word ids: two different n-grams of one document collide with probability
    about 2^-64 per pair.

    It can hold a batch of documents (`bounds`: where each one's words begin, then the end): no n-gram
    spans two documents, equal n-grams of different documents are told apart (their keys are grouped
    with the document's salt) and the `*_per_doc` methods give one value per document."""

    def __init__(self, words: list[str] | None = None, *, ids: np.ndarray | None = None,
                 lengths: np.ndarray | None = None, bounds: np.ndarray | None = None):
        """From `words`, or from `ids` (equal words, equal ids: uint64) and `lengths` (len of each word);
        `bounds`: word offsets of the documents (default: one document)."""
        if words is not None:
            index = {w: i for i, w in enumerate(dict.fromkeys(words))}
            ids = np.array([index[w] for w in words], dtype=np.uint64)
            lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        assert ids is not None and lengths is not None
        self.ids = ids
        self.cum = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.cum[1:])
        self.bounds = np.array([0, len(ids)]) if bounds is None else np.asarray(bounds, dtype=np.int64)
        sizes = np.diff(self.bounds)
        self.docs = len(sizes)
        self.doc_of = np.repeat(np.arange(self.docs), sizes)  # the document of every word
        salts = mix64(np.arange(1, self.docs + 1, dtype=np.uint64))
        self.salt = np.repeat(salts, sizes) if self.docs > 1 else None

    @cached_property
    def doc_end(self) -> np.ndarray:
        """Where the words of each word's document end."""
        return np.repeat(self.bounds[1:], np.diff(self.bounds))

    def valid(self, n: int) -> np.ndarray:
        """The positions where an n-gram starts and ends inside one document."""
        return np.flatnonzero(self.doc_end - np.arange(len(self.ids)) >= n)

    def crossing(self, n: int) -> np.ndarray:
        """The positions before len(ids) - n + 1 where an n-gram would leave its document: the last n - 1
        of every document but the last."""
        ends = self.bounds[1:-1]
        ends = ends[ends > 0]
        if not len(ends):
            return ends
        starts = np.maximum(ends - (n - 1), np.concatenate(([0], ends[:-1])))
        return np.concatenate([np.arange(a, b) for a, b in zip(starts.tolist(), ends.tolist())])

    def keys(self, n: int, positions: np.ndarray | None = None) -> np.ndarray:
        """The key of the n-gram starting at each of `positions` (None: at every position)."""
        count = len(self.ids) - n + 1
        if count <= 0:
            return np.zeros(0, dtype=np.uint64)
        if positions is None:
            positions = self.valid(n)
        with np.errstate(over="ignore"):
            h = self.ids[positions]
            for k in range(1, n):
                h = h * _MULTIPLIER + self.ids[positions + k]
        return h

    def repeats(self, n: int, candidates: np.ndarray | None = None,
                keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(positions, keys, counts, firsts) of the n-grams that occur more than once: their start
        positions (ascending), their keys, counts and whether each is its n-gram's first occurrence. Only
        `candidates` are looked at: positions holding every repeated n-gram (a repeated n-gram starts
        where a repeated (n-1)-gram does and one follows it, so the repeats of n-1 are candidates for n);
        None looks at every position. `keys`: the (n-1)-gram keys at the candidates (as returned for
        n-1), extended by one word instead of hashed anew."""
        if candidates is None:  # every position: keys from slices; n-grams leaving a document set apart
            count = len(self.ids) - n + 1
            if count <= 0:
                return self._none()
            positions = None
            with np.errstate(over="ignore"):
                k = self.ids[:count]
                for j in range(1, n):
                    k = k * _MULTIPLIER + self.ids[j : count + j]
        else:
            if n > 2:  # a repeated n-gram at p has repeated (n-1)-grams at p and p + 1 (so it is inside one document)
                follows = np.zeros(len(candidates), dtype=bool)
                np.equal(candidates[1:], candidates[:-1] + 1, out=follows[:-1])
            else:
                follows = candidates + n <= self.doc_end[candidates]
            positions = candidates[follows]
            if keys is None:
                k = self.keys(n, positions)
            else:
                with np.errstate(over="ignore"):
                    k = keys[follows] * _MULTIPLIER + self.ids[positions + (n - 1)]
        return self._repeated(n, positions, k)

    def _repeated(self, n: int, positions: np.ndarray | None,
                  k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`repeats` among the n-grams with keys `k` at `positions` (ascending; None: at every position)."""
        if len(k) == 0:
            return self._none()
        if self.salt is None:
            grouped = k
        else:  # one document's n-grams together
            grouped = k ^ (self.salt[: len(k)] if positions is None else self.salt[positions])
        if positions is None and self.docs > 1:
            # an n-gram leaving its document is no n-gram: a key of its own (a bijection of its position,
            # equal to a real key with probability 2^-64 like any two keys) keeps it out of every group
            crossing = self.crossing(n)
            crossing = crossing[crossing < len(k)]
            grouped[crossing] = mix64(crossing.astype(np.uint64) ^ _CROSSING)
        order, same = sort_groups(grouped)
        starts = np.flatnonzero(np.concatenate(([True], ~same)))
        sizes = np.diff(np.append(starts, len(k)))
        in_repeat = np.zeros(len(k), dtype=bool)  # (sorted) in a group of two or more
        in_repeat[1:] = same
        in_repeat[:-1] |= same
        members = order[in_repeat]  # group by group, as `sizes`
        several = sizes[sizes >= 2]
        repeated = np.zeros(len(k), dtype=bool)
        repeated[members] = True
        count_at = np.empty(len(k), dtype=np.int64)
        count_at[members] = np.repeat(several, several)
        first = np.zeros(len(k), dtype=bool)
        first[members[np.cumsum(several) - several]] = True  # each group's smallest index: its first occurrence
        found = np.flatnonzero(repeated)
        return (found if positions is None else positions[found]), k[found], count_at[found], first[found]

    @staticmethod
    def _none() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        none = np.zeros(0, dtype=np.int64)
        return none, none.astype(np.uint64), none, none.astype(bool)

    def covered_chars_per_doc(self, positions: np.ndarray, n: int) -> np.ndarray:
        """Per document, the characters of the words covered by the n-grams starting at `positions`
        (ascending), each word counted once: a bound on what any longer repeated n-gram can add (see
        `reject_batch`). An n-gram never leaves its document, so the running maximum of the ends never
        carries from one document into the next."""
        if not len(positions):
            return np.zeros(self.docs, dtype=np.int64)
        ends = np.maximum.accumulate(positions + n)
        stops = np.minimum(ends, np.append(positions[1:], ends[-1]))
        chars = self.cum[stops] - self.cum[positions]
        return np.bincount(self.doc_of[positions], weights=chars, minlength=self.docs).astype(np.int64)

    def top_chars_per_doc(self, n: int, found: tuple[np.ndarray, ...]) -> np.ndarray:
        """Per document, `top_ngram_chars` from the repeats of n (all documents'): the most frequent
        n-gram (earliest among ties), space-joined, times its count."""
        positions, counts = found[0], found[2]
        result = np.zeros(self.docs, dtype=np.int64)
        if not len(positions):
            return result
        doc = self.doc_of[positions]
        first = np.flatnonzero(np.concatenate(([True], doc[1:] != doc[:-1])))  # each document's first repeat
        top = np.maximum.reduceat(counts, first)
        at_top = np.flatnonzero(counts == np.repeat(top, np.diff(np.append(first, len(counts)))))
        earliest = at_top[np.concatenate(([True], doc[at_top][1:] != doc[at_top][:-1]))]  # first among ties
        start = positions[earliest]
        result[doc[first]] = (self.cum[start + n] - self.cum[start] + n - 1) * top
        return result

    def scan_per_doc(self, positions: np.ndarray, keys: np.ndarray, n: int, docs: np.ndarray) -> dict[int, int]:
        """scan_repeats of each of `docs` (document numbers) over its part of the repeated n-grams at
        `positions` with their `keys`."""
        cut = np.searchsorted(positions, self.bounds).tolist()
        chars = (self.cum[positions + n] - self.cum[positions]).tolist()
        where, keys_ = positions.tolist(), keys.tolist()
        return {d: scan_repeats(where[cut[d]:cut[d + 1]], keys_[cut[d]:cut[d + 1]], chars[cut[d]:cut[d + 1]], n)
                for d in docs.tolist()}

    def top_chars(self, n: int, found: tuple[np.ndarray, ...] | None = None) -> int:
        """As `top_ngram_chars`, for a one-document index: the most frequent n-gram (earliest among
        ties), space-joined, times its count."""
        return int(self.top_chars_per_doc(n, self.repeats(n) if found is None else found)[0])

    def duplicated_chars(self, sizes: tuple[int, ...] = DUP_NGRAM_SIZES,
                         candidates: np.ndarray | None = None) -> dict[int, int]:
        """As `duplicated_ngram_chars` (datatrove's find_all_duplicate) for each n in `sizes` (ascending).
        Only repeated n-grams can change the scan (a unique one is added to `seen` and never looked
        up again), so it visits only their positions."""
        result: dict[int, int] = {}
        keys = None
        for n in sizes:
            candidates, keys, _, _ = self.repeats(n, candidates, keys)
            result[n] = self.scan(candidates, keys, n)
        return result

    def scan(self, positions: np.ndarray, keys: np.ndarray, n: int) -> int:
        """scan_repeats over the repeated n-grams at `positions` with their `keys` (one-document index)."""
        return self.scan_per_doc(positions, keys, n, np.zeros(1, dtype=np.int64))[0]

    def profile(self) -> tuple[dict[int, int], dict[int, int]]:
        """(top n-gram characters for n = 2, 3, 4; duplicated n-gram characters for n = 5..10), each n
        looking only at the repeats of n-1: one sort over the whole document, then ever fewer positions."""
        top, (candidates, _, _) = self.top_profile()
        return top, self.duplicated_chars(DUP_NGRAM_SIZES, candidates)

    def top_profile_per_doc(self) -> tuple[dict[int, list[int]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(each document's top n-gram characters for n = 2, 3, 4; positions, keys and first-occurrence
        flags of the repeated 4-grams), each n looking only at the repeats of n-1."""
        top: dict[int, list[int]] = {}
        candidates = keys = None
        for n in TOP_NGRAM_SIZES:
            found = self.repeats(n, candidates, keys)
            top[n] = self.top_chars_per_doc(n, found).tolist()
            candidates, keys = found[0], found[1]
        return top, (candidates, keys, found[3])

    def bounded_top_profile_per_doc(self, lengths: np.ndarray, limit: float) -> tuple[
            dict[int, list[int]], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """As `top_profile_per_doc`, with the top 3-gram counted only in the documents where it could
        exceed `limit` of their `lengths` (elsewhere it is given as 0). A 3-gram abc repeated c times
        has its 2-grams ab and bc repeated at least c times, so c * (|abc| + 2) is at most twice the
        largest (characters + 1) * count of any repeated 2-gram. The repeated 4-grams are looked for
        where three repeated 2-grams follow each other (a 4-gram's key is its first 2-gram's key times
        the multiplier squared plus its second's)."""
        two = self.repeats(2)
        top = {2: self.top_chars_per_doc(2, two).tolist()}
        positions, keys, counts, _ = two
        doc = self.doc_of[positions]
        most = np.zeros(self.docs, dtype=np.int64)
        np.maximum.at(most, doc, (self.cum[positions + 2] - self.cum[positions] + 1) * counts)
        wanted = (2 * most / lengths > limit)[doc]
        top[3] = self.top_chars_per_doc(3, self.repeats(3, positions[wanted], keys[wanted])).tolist()
        at = np.flatnonzero(positions[2:] == positions[:-2] + 2)
        with np.errstate(over="ignore"):
            four = self._repeated(4, positions[at], keys[at] * _SQUARE + keys[at + 2])
        top[4] = self.top_chars_per_doc(4, four).tolist()
        return top, (four[0], four[1], four[3])

    def top_profile(self) -> tuple[dict[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(top n-gram characters for n = 2, 3, 4; positions, keys and first-occurrence flags of the
        repeated 4-grams) of a one-document index."""
        top, found = self.top_profile_per_doc()
        return {n: chars[0] for n, chars in top.items()}, found


def scan_repeats(positions: list[int], keys: list[int], chars: list[int], n: int) -> int:
    """find_all_duplicate's left-to-right scan, visiting only `positions` (ascending) of repeated n-grams."""
    seen: set[int] = set()
    repeated, resume, j, count = 0, 0, 0, len(positions)
    while j < count:
        i = positions[j]
        if i < resume:  # inside the n-gram just counted: skipped
            j += 1
            continue
        if keys[j] in seen:
            repeated += chars[j]
            resume = i + n
        else:
            seen.add(keys[j])
        j += 1
    return repeated


@register_step("repetition", config=RepetitionConfig, group="filter", order=40, help="Gopher repetition rules")
class GopherRepetition(Filter):
    """Removes documents that repeat themselves: duplicate lines/paragraphs and n-grams."""

    # numpy over batches of about 128K characters: many short documents share one batch's fixed cost
    batch_size, batch_chars = 256, 1 << 17

    def __init__(self, config: RepetitionConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config

    def lines_reason(self, v) -> str | None:
        """The duplicate paragraph and line rules (the view's counts: find_duplicates of its paragraphs
        and non-empty lines, from hashes in numpy)."""
        c, length = self.config, max(len(v.text), 1)
        paragraphs, dup_paras, dup_chars = v.paragraph_repeats
        if dup_paras / paragraphs > c.max_dup_para_frac:
            return "repetition:dup_para_frac"
        if dup_chars / length > c.max_dup_para_char_frac:
            return "repetition:dup_para_char_frac"
        lines, dup_lines, dup_chars = v.line_repeats
        if dup_lines / max(lines, 1) > c.max_dup_line_frac:
            return "repetition:dup_line_frac"
        if dup_chars / length > c.max_dup_line_char_frac:
            return "repetition:dup_line_char_frac"
        return None

    def reject_batch(self, docs: list[Document]) -> list[str | None]:
        c, views = self.config, prepare_views(docs)
        reasons = [self.lines_reason(v) for v in views]
        todo = [i for i, reason in enumerate(reasons) if reason is None]  # judged on their n-grams
        if not todo:
            return reasons
        sizes = [len(views[i].word_ids) for i in todo]
        grams = NgramIndex(ids=np.concatenate([views[i].word_ids for i in todo]),
                           lengths=np.concatenate([views[i].word_lengths for i in todo]),
                           bounds=np.concatenate(([0], np.cumsum(sizes))))
        length = [max(len(views[i].text), 1) for i in todo]
        active = np.ones(len(todo), dtype=bool)  # documents no rule has decided yet

        def decide(j: int, reason: str | None) -> None:
            reasons[todo[j]] = reason
            active[j] = False

        top, (candidates, keys, firsts) = grams.bounded_top_profile_per_doc(np.array(length),
                                                                            c.max_top_ngram_char_frac[1])
        for n, limit in zip(TOP_NGRAM_SIZES, c.max_top_ngram_char_frac):
            for j in np.flatnonzero(active).tolist():
                if top[n][j] / length[j] > limit:
                    decide(j, f"repetition:top_{n}gram")
        # Bounds that spare the scan. The scan counts an n-gram only where it repeats one seen earlier,
        # never two that overlap: it counts at most the characters covered by the later (not first)
        # occurrences of the repeated n-grams. A later occurrence of a repeated m-gram (m > n) is
        # covered by later occurrences of repeated n-grams, so that bound holds for every longer n too:
        # once it is within every remaining limit the document is kept; within this n's limit, this n
        # needs no scan.
        limits = list(zip(DUP_NGRAM_SIZES, c.max_dup_ngram_char_frac))
        for i, (n, limit) in enumerate(limits):
            later = grams.covered_chars_per_doc(candidates[~firsts], n - 1).tolist()
            for j in np.flatnonzero(active).tolist():
                if all(later[j] / length[j] <= rest for _, rest in limits[i:]):
                    decide(j, None)
            if not active.any():
                break
            still = active[grams.doc_of[candidates]]
            candidates, keys, _, firsts = grams.repeats(n, candidates[still], keys[still])
            later = grams.covered_chars_per_doc(candidates[~firsts], n).tolist()
            scan = [j for j in np.flatnonzero(active).tolist() if later[j] / length[j] > limit]
            for j, chars in grams.scan_per_doc(candidates, keys, n, np.array(scan, dtype=np.int64)).items():
                if chars / length[j] > limit:
                    decide(j, f"repetition:dup_{n}gram")
        return reasons
