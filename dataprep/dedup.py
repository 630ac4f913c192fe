"""Exact and near-duplicate removal (two passes: sign every document, then keep one per cluster).

Pass one spools documents to a temporary file and keeps only a small signature per document in
memory (a 16-byte hash, or a MinHash of `num_perm` uint32s), so memory follows signatures, not
texts. In each cluster the kept document is the longest, ties broken by the smallest id: the
choice does not depend on input order. Removed documents carry `duplicate_of` (the kept id).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import tempfile
from collections import Counter
from typing import IO, Iterable, Iterator

import numpy as np
from datasketch import MinHash, MinHashLSH

from dataprep.config import ExactDedupConfig, NearDedupConfig
from dataprep.step import RemoveCallback, Step
from tokenmill.documents import Document

WORD = re.compile(r"\w+")


class Spool:
    """Documents parked in a temporary file between the two passes, read back in order."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.TemporaryFile(prefix="tokenmill-dedup-")
        self.count = 0

    def add(self, doc: Document) -> None:
        pickle.dump((doc.id, doc.text, doc.meta), self.file, protocol=pickle.HIGHEST_PROTOCOL)
        self.count += 1

    def __iter__(self) -> Iterator[Document]:
        self.file.seek(0)
        for _ in range(self.count):
            yield Document(*pickle.load(self.file))
        self.file.close()


class UnionFind:
    def __init__(self, size: int):
        self.parent = list(range(size))

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


class Dedup(Step):
    """Shared second pass: given a cluster label per document, keep the longest in each cluster."""

    def __init__(self, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.cluster_sizes: Counter = Counter()  # size of clusters with duplicates → clusters

    def sign(self, doc: Document) -> None:
        """Pass one: remember whatever identifies `doc`'s cluster (document number = call order)."""
        raise NotImplementedError

    def clusters(self) -> list[int]:
        """After pass one: a cluster label per document number."""
        raise NotImplementedError

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        spool = Spool()
        ids: list[str] = []
        lengths: list[int] = []
        for doc in docs:
            self.sign(doc)
            spool.add(doc)
            ids.append(doc.id)
            lengths.append(len(doc.text))
        self.documents_in = len(ids)
        keeper = self.choose_keepers(self.clusters(), ids, lengths)
        for number, doc in enumerate(spool):
            if keeper[number] == number:
                self.documents_out += 1
                yield doc
            else:
                doc.meta["duplicate_of"] = ids[keeper[number]]
                self.remove(doc, self.name)

    def choose_keepers(self, labels: list[int], ids: list[str], lengths: list[int]) -> list[int]:
        """The document number kept for each document's cluster: longest, then smallest id."""
        best: dict[int, int] = {}
        size: Counter = Counter(labels)
        for number, label in enumerate(labels):
            current = best.get(label)
            if current is None or (-lengths[number], ids[number]) < (-lengths[current], ids[current]):
                best[label] = number
        self.cluster_sizes = Counter(n for n in size.values() if n > 1)
        return [best[label] for label in labels]


class ExactDedup(Dedup):
    """Removes documents whose (normalised) text equals another's."""

    name = "exact_dedup"

    def __init__(self, config: ExactDedupConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.labels: list[int] = []
        self.first_with_digest: dict[bytes, int] = {}

    def sign(self, doc: Document) -> None:
        text = " ".join(doc.text.casefold().split()) if self.config.normalize_text else doc.text
        digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        self.labels.append(self.first_with_digest.setdefault(digest, len(self.labels)))

    def clusters(self) -> list[int]:
        return self.labels


def shingles(text: str, n: int) -> set[bytes]:
    """Lower-cased word n-grams (the whole text as one shingle when it has fewer than n words)."""
    words = WORD.findall(text.lower())
    if len(words) < n:
        return {" ".join(words).encode("utf-8")}
    return {" ".join(words[i : i + n]).encode("utf-8") for i in range(len(words) - n + 1)}


class NearDedup(Dedup):
    """MinHash + LSH (datasketch) over word n-grams; candidates are joined with union-find."""

    name = "near_dedup"

    def __init__(self, config: NearDedupConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.permutations = MinHash(num_perm=config.num_perm, seed=config.seed).permutations
        self.signatures: list[np.ndarray] = []

    def minhash(self, text: str) -> MinHash:
        mh = MinHash(num_perm=self.config.num_perm, permutations=self.permutations, scheme="affine32")
        mh.update_batch(shingles(text, self.config.ngram_size))  # min: order-free
        return mh

    def sign(self, doc: Document) -> None:
        self.signatures.append(self.minhash(doc.text).hashvalues)

    def clusters(self) -> list[int]:
        c = self.config
        lsh = MinHashLSH(num_perm=c.num_perm, params=(c.bands, c.rows))
        sketches = [
            MinHash(permutations=self.permutations, hashvalues=h, scheme="affine32") for h in self.signatures
        ]
        for number, sketch in enumerate(sketches):
            lsh.insert(number, sketch, check_duplication=False)
        groups = UnionFind(len(sketches))
        for number, sketch in enumerate(sketches):
            for other in lsh.query(sketch):
                if other > number and self.similar(number, other):
                    groups.union(number, other)
        return [groups.find(n) for n in range(len(sketches))]

    def similar(self, a: int, b: int) -> bool:
        if self.config.min_jaccard <= 0.0:
            return True
        agree = np.count_nonzero(self.signatures[a] == self.signatures[b])
        return agree / self.config.num_perm >= self.config.min_jaccard
