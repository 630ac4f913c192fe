"""MinHash signatures for a batch of documents at once (numpy), and LSH clustering in linear time.

Signing: every `\\w+` word of the lower-cased text is hashed in numpy over its code points (no
Python loop per word); a shingle's hash combines the hashes of its `n` words with 64-bit
multiply-xor arithmetic over the whole batch at once; the `num_perm` permutations are
`a * x (mod 2**32)` of the shingle hash's well-mixed top 32 bits `x`, with random odd `a`
(multiply-shift hashing: bijections; estimates are unbiased with binomial variance, tested), and a
signature value is the minimum. 32-bit products are vectorised (64-bit ones are not on AVX2) and
half the memory traffic: signing takes half the time of the earlier 64-bit products, whose
signatures differed only as another seed's would (on the 60 MB bench corpus 1,392 removals became
1,400, 1,363 in both; the 66 that changed sit at the threshold: exact Jaccard median 0.69). Everything is a function of the
text and the seed: the same text gets the same signature in any process, batch or order.

Clustering: per band, the `rows` values of a signature are folded into one 64-bit key; documents
are sorted by key, and every run of equal keys is joined to its first member (a star, not all
pairs); dataprep/dedup.py takes connected components of those edges. O(n log n) per band and no
pairwise loop inside large clusters.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

WORD = re.compile(r"\w+")
MASK64 = (1 << 64) - 1
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_PRIME = np.uint64(0x9E3779B97F4A7C15)
_EMPTY = np.uint64(0x243F6A8885A308D3)  # the hash of a document without words
CHUNK_VALUES = 1 << 19  # shingles x permutations computed at once: 2 MiB of uint32, in L2 (1.3x as fast as 8 MiB)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over all 64 output bits (in place)."""
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def words(text: str) -> list[str]:
    """Lower-cased `\\w+` words: what shingles are made of."""
    return WORD.findall(text.lower())


_word_table: np.ndarray | None = None
_powers = np.ones(1, dtype=np.uint64)  # _P ** i, grown on demand
_inverse_powers = np.ones(1, dtype=np.uint64)  # _P ** -i (mod 2**64; _P is odd)
_P = np.uint64(0x100000001B3)  # FNV's 64-bit prime
_P_INVERSE = np.uint64(pow(0x100000001B3, -1, 1 << 64))
SIGN_CHARS = 1 << 19  # characters of text signed at once (MinHasher.sign): ~4 MB of shingle arrays, 1.1x as fast as 1 << 22
CHUNK_CHARS = 1 << 17  # characters turned into word hashes at once: ~20 bytes of numpy state each, in cache
POWERS_KEPT = 1 << 18  # powers kept between calls: 4 MiB, more than a chunk of CHUNK_CHARS needs


def word_table() -> np.ndarray:
    """For every code point, whether `re`'s `\\w` matches it; built once (~0.02 s: one `\\w+` scan over
    every code point, a few hundred runs)."""
    global _word_table
    if _word_table is None:
        every = np.arange(0x110000, dtype=np.uint32).tobytes().decode("utf-32-le", "surrogatepass")
        table = np.zeros(0x110000, dtype=bool)
        for run in WORD.finditer(every):
            table[run.start() : run.end()] = True
        _word_table = table
    return _word_table


_bmp_table: np.ndarray | None = None
_SPECIAL = 0xFFFF  # U+FFFF is a noncharacter: never a word character, free to mark what the table cannot do


def bmp_lower_table() -> np.ndarray:
    """For every code point below U+10000: its lower-case form where that is a `\\w` character, else 0;
    `_SPECIAL` where lower-casing is not one character by itself ('İ' becomes two; 'Σ' depends on
    its neighbours). 128 KiB, built once in a few milliseconds."""
    global _bmp_table
    if _bmp_table is None:
        table = np.zeros(0x10000, dtype=np.uint16)
        for code, low in enumerate([chr(c).lower() for c in range(0x10000)]):
            if len(low) != 1 or code == 0x03A3:
                table[code] = _SPECIAL
            elif low.isalnum() or low == "_":  # re's \w
                table[code] = ord(low)
        _bmp_table = table
    return _bmp_table


def powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """_P ** i and _P ** -i for i < n (at least). Kept for n up to POWERS_KEPT (what signing's chunks
    need, over and over); a longer text gets tables for its call only: kept, they would stay as large
    as the longest text ever seen (16 bytes a character; a 5M-character page would keep 80 MB)."""
    global _powers, _inverse_powers
    if n > POWERS_KEPT:
        with np.errstate(over="ignore"):
            return _cumulative(_P, n), _cumulative(_P_INVERSE, n)
    if len(_powers) < n:
        size = min(max(n, 2 * len(_powers)), POWERS_KEPT)
        with np.errstate(over="ignore"):
            _powers = _cumulative(_P, size)
            _inverse_powers = _cumulative(_P_INVERSE, size)
    return _powers, _inverse_powers


def span_hashes(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each span [start, end) of code points: equal strings get equal hashes (a
    polynomial over the code points, mixed with the length; different strings collide with
    probability about 2^-64 per pair)."""
    pw, inv = powers(len(points) + 1)
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(points) + 1, dtype=np.uint64)
        np.multiply(points, pw[: len(points)], out=prefix[1:])
        np.cumsum(prefix[1:], out=prefix[1:])
        hashes = (prefix[ends] - prefix[starts]) * inv[starts]
        hashes ^= (ends - starts).astype(np.uint64) * _M2
        return mix64(hashes)


def _cumulative(base: np.uint64, size: int) -> np.ndarray:
    """base ** 0, base ** 1, ... (mod 2**64)."""
    values = np.full(size, base, dtype=np.uint64)
    values[0] = 1
    with np.errstate(over="ignore"):
        return np.multiply.accumulate(values)


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit hash of every `\\w+` word of the lower-cased texts (concatenated), and words per text.

    Vectorised over code points: a word's hash is a polynomial in its code points (prefix sums
    mod 2**64, shifted by inverse powers), mixed with its length (`span_hashes`). Equal words give
    equal hashes wherever they occur.
    """
    all_hashes, counts = [], np.zeros(len(texts), dtype=np.int64)
    lo = 0
    while lo < len(texts):
        hi, chars = lo, 0
        while hi < len(texts) and (hi == lo or chars + len(texts[hi]) <= CHUNK_CHARS):
            chars += len(texts[hi]) + 1
            hi += 1
        hashes, counts[lo:hi] = _chunk_word_hashes(texts[lo:hi])
        all_hashes.append(hashes)
        lo = hi
    return (np.concatenate(all_hashes) if all_hashes else np.zeros(0, dtype=np.uint64)), counts


def _chunk_word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Word hashes of a few texts joined by NULs. One lookup in `bmp_lower_table` lower-cases every
    character and tells words apart; the texts it cannot do alone (with 'İ', 'Σ' or characters above
    U+FFFF) are done again with `str.lower` (`_lowered_word_hashes`) and merged in text order."""
    points = np.frombuffer("\x00".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    bounds = np.zeros(len(texts) + 1, dtype=np.int64)  # where each text starts in `points`, and the end
    np.cumsum([len(t) + 1 for t in texts], out=bounds[1:])
    wide = points > 0xFFFF
    lowered = bmp_lower_table().take(np.where(wide, 0, points) if wide.any() else points)
    special = (lowered == _SPECIAL) | wide
    others: list[int] = []
    if special.any():  # those texts have no words here: they come from str.lower below
        others = np.unique(np.searchsorted(bounds, np.flatnonzero(special), side="right") - 1).tolist()
        for i in others:
            lowered[bounds[i] : bounds[i + 1] - 1] = 0
    is_word = np.zeros(len(points) + 2, dtype=bool)
    np.not_equal(lowered, 0, out=is_word[1:-1])
    hashes, counts = _hash_words(lowered, is_word, bounds)
    if not others:
        return hashes, counts
    other_hashes, other_counts = _lowered_word_hashes([texts[i] for i in others])
    counts[others] = other_counts
    first = np.zeros(len(texts) + 1, dtype=np.int64)  # each text's first word in the merged order
    np.cumsum(counts, out=first[1:])
    merged = np.empty(int(first[-1]), dtype=np.uint64)
    is_other = np.zeros(len(texts), dtype=bool)
    is_other[others] = True
    mine = np.repeat(~is_other, counts)
    merged[mine] = hashes
    merged[~mine] = other_hashes
    return merged, counts


def _lowered_word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """`_chunk_word_hashes` through `str.lower` and the word table: exact for every text.

    NUL is neither a word character nor cased nor case-ignorable: lower-casing the joined texts
    equals joining the lower-cased ones (final sigma included). Where lengths change ('İ' becomes
    two characters), the texts' bounds are the NULs between them, unless a text has NULs itself.
    """
    joined = "\x00".join(texts)
    lowered = joined.lower()
    points = np.frombuffer(lowered.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    bounds = np.zeros(len(texts) + 1, dtype=np.int64)
    bounds[-1] = len(points) + 1
    if len(lowered) == len(joined):
        np.cumsum([len(t) + 1 for t in texts[:-1]], out=bounds[1:-1])
    elif joined.count("\x00") == len(texts) - 1:
        bounds[1:-1] = np.flatnonzero(points == 0) + 1
    else:
        np.cumsum([len(t.lower()) + 1 for t in texts[:-1]], out=bounds[1:-1])
    is_word = np.zeros(len(points) + 2, dtype=bool)
    np.take(word_table(), points, out=is_word[1:-1])
    return _hash_words(points, is_word, bounds)


def _hash_words(points: np.ndarray, is_word: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The hashes of the words of `points` (runs where `is_word`, which has one False on either side),
    and the words of each text, `bounds` being where each text starts (then the end): no word spans
    two texts (a NUL between them)."""
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    starts, ends = edges[0::2], edges[1::2]
    return span_hashes(points, starts, ends), np.diff(np.searchsorted(starts, bounds))


class MinHasher:
    """Signs batches of texts: `sign(texts) -> uint32 array (len(texts), num_perm)`."""

    def __init__(self, num_perm: int, ngram_size: int, seed: int):
        self.num_perm, self.ngram_size, self.seed = num_perm, ngram_size, seed
        rng = np.random.Generator(np.random.PCG64(seed))
        self.a = (rng.integers(0, 1 << 32, size=num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)

    def shingle_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """All shingle hashes of the batch, concatenated, and each text's start offset into them.

        A text with fewer than `n` words is one shingle of all its words (no words: a constant).
        """
        n = self.ngram_size
        hashed_words, counts = word_hashes(texts)
        starts = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(counts, out=starts[1:])
        # shingles per text: max(words - n + 1, 1)
        per_text = np.maximum(counts - n + 1, 1)
        offsets = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(per_text, out=offsets[1:])
        total = int(offsets[-1])
        hashes = np.empty(total, dtype=np.uint64)
        with np.errstate(over="ignore"):
            # A polynomial in the (already mixed) word hashes, mixed once, at every word position
            # (contiguous slices, no gathers); windows that run past their text's end are dropped.
            windows = max(len(hashed_words) - n + 1, 0)
            acc = hashed_words[:windows].copy()
            for k in range(1, n):
                acc *= _PRIME
                acc += hashed_words[k : k + windows]
            mix64(acc)
            # the window at word position p is whole iff p + n <= its text's end: the last n - 1
            # positions of every text are not (set per text, not per word)
            full = np.ones(windows, dtype=bool)
            for k in range(1, n):
                cut = starts[1:] - k
                full[cut[(cut >= starts[:-1]) & (cut < windows)]] = False
            long_texts = counts >= n
            if long_texts.all():
                return acc[full], offsets
            single = np.zeros(total, dtype=bool)
            single[offsets[:-1][~long_texts]] = True
            hashes[~single] = acc[full]
            # Short texts: one shingle of however many words they have.
            for i in np.flatnonzero(~long_texts):
                h = np.array([_EMPTY])
                if counts[i]:
                    h = hashed_words[starts[i] : starts[i] + 1].copy()
                    for k in range(1, int(counts[i])):
                        h *= _PRIME
                        h += hashed_words[starts[i] + k : starts[i] + k + 1]
                    mix64(h)
                hashes[offsets[i]] = h[0]
        return hashes, offsets

    def sign_hashes(self, hashes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures from shingle hashes grouped by `offsets` (every group non-empty)."""
        documents = len(offsets) - 1
        # permutation-major (num_perm, shingles) blocks: the minimum runs along contiguous memory
        signatures = np.full((self.num_perm, documents), np.iinfo(np.uint32).max, dtype=np.uint32)
        width = max(1, CHUNK_VALUES // self.num_perm)
        buffer = np.empty((self.num_perm, width), dtype=np.uint32)
        a = self.a[:, None]
        owner_starts = offsets[:-1]
        with np.errstate(over="ignore"):
            for lo in range(0, len(hashes), width):
                hi = min(lo + width, len(hashes))
                block = buffer[:, : hi - lo]
                top = (hashes[lo:hi] >> np.uint64(32)).astype(np.uint32)  # the well-mixed high half
                np.multiply(a, top[None, :], out=block)
                # documents whose shingles fall in [lo, hi): the first one may have started earlier
                d0 = int(np.searchsorted(owner_starts, lo, side="right")) - 1
                d1 = int(np.searchsorted(owner_starts, hi, side="left"))
                cuts = np.maximum(owner_starts[d0:d1], lo) - lo
                mins = np.minimum.reduceat(block, cuts, axis=1)
                np.minimum(signatures[:, d0:d1], mins, out=signatures[:, d0:d1])
        return np.ascontiguousarray(signatures.T)

    def sign(self, texts: Sequence[str]) -> np.ndarray:
        """Signatures of `texts`, SIGN_CHARS of text at a time (the shingle arrays take ~50 bytes per
        word: a batch of long documents would otherwise need hundreds of MB at once)."""
        if not texts:
            return np.zeros((0, self.num_perm), dtype=np.uint32)
        parts, lo = [], 0
        while lo < len(texts):
            hi, chars = lo + 1, len(texts[lo])
            while hi < len(texts) and chars + len(texts[hi]) <= SIGN_CHARS:
                chars += len(texts[hi])
                hi += 1
            parts.append(self.sign_hashes(*self.shingle_hashes(texts[lo:hi])))
            lo = hi
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def shingle_set(self, text: str) -> set[int]:
        """One text's shingle hashes as a set (for exact Jaccard checks)."""
        hashes, _ = self.shingle_hashes([text])
        return set(hashes.tolist())

    def shingle_arrays(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Each text's distinct shingle hashes, sorted (for exact Jaccard checks of many texts: `jaccard_sorted`),
        SIGN_CHARS of text at a time."""
        arrays: list[np.ndarray] = []
        lo = 0
        while lo < len(texts):
            hi, chars = lo + 1, len(texts[lo])
            while hi < len(texts) and chars + len(texts[hi]) <= SIGN_CHARS:
                chars += len(texts[hi])
                hi += 1
            hashes, offsets = self.shingle_hashes(texts[lo:hi])
            arrays += [np.unique(hashes[offsets[i] : offsets[i + 1]]) for i in range(hi - lo)]
            lo = hi
        return arrays


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def jaccard_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted arrays of distinct values (`MinHasher.shingle_arrays`)."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common) if len(a) or len(b) else 1.0


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One uint64 key per (document, band): the band's `rows` values folded together."""
    sig = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    keys = np.zeros((len(signatures), bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(rows):
            keys = mix64((keys ^ sig[:, :, r]) * _PRIME)
        keys ^= np.arange(bands, dtype=np.uint64) * _M1  # the same values in two bands are not a match
    return keys


def band_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(member, first) pairs: every document whose key equals an earlier one's, joined to the run's first."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    same = np.empty(len(keys), dtype=bool)
    if len(keys):
        same[0] = False
        same[1:] = sorted_keys[1:] == sorted_keys[:-1]
    run_start = np.maximum.accumulate(np.where(same, 0, np.arange(len(keys))))
    members = order[same]
    firsts = order[run_start[same]]
    return members, firsts
