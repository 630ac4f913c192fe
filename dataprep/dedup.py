"""Exact and near-duplicate removal: global steps in two passes over re-readable documents.

This module decides in memory (a step's `run` on a list of documents, and the reference the tests
compare with); `tokenmill prepare` and `tokenmill dedup` decide the same out of core, with memory that
does not grow with the corpus (dataprep/dedup_disk.py, docs/scaling.md).

Pass one signs every document in batches (`Dedup.sign`: a 16-byte digest, or a MinHash of
`bands x rows` uint32s) and keeps only the signatures, ids and lengths. `resolve` then clusters all
of them at once (and against an incremental index of earlier batches, when one is given), and pass
two re-reads the documents (the input shards; nothing is spooled) and drops the duplicates.

State per document: its id (a Python str, ~50 bytes + its length), its length (8 bytes), 16 bytes
for exact_dedup and 4 x bands x rows bytes for near_dedup (448 with the defaults); while clustering,
8 x bands bytes of band keys and 8 bytes per candidate edge. Nothing grows with the text.

In each cluster the kept document is the longest, ties broken by the smallest id, so the choice does
not depend on input order; a document of an earlier batch in the index always wins over a new one
(it is already published). Removed documents carry `duplicate_of` (the id of the survivor they
lead to); survivors carry `cluster_id` (their own id) and `cluster_size` (documents they stand for).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from dataprep.minhash import MinHasher, band_edges, band_keys, jaccard
from dataprep.step import RemoveCallback, Step
from tokenmill.documents import Document

BATCH = 1024  # documents signed at once
TextsFn = Callable[[Sequence[int]], dict[int, str]]  # document numbers -> their texts (pass-one order)


PARTITION_BYTES = 32 << 20  # default: clustering memory of one partition of band keys (dataprep/dedup_disk.py)


@dataclass
class ExactDedupConfig:
    normalize_text: bool = True  # compare case-folded text with whitespace collapsed, not raw bytes
    partition_bytes: int = PARTITION_BYTES  # memory of one partition of digests while clustering (any corpus size)

    def __post_init__(self) -> None:
        if self.partition_bytes < 1 << 12:
            raise ValueError(f"exact_dedup.partition_bytes must be at least 4096, got {self.partition_bytes}")


@dataclass
class NearDedupConfig:
    ngram_size: int = 5  # shingles are word n-grams of this size (lower-cased)
    bands: int = 14  # LSH bands; with rows=8 the similarity threshold is about (1/14)^(1/8) ≈ 0.72
    rows: int = 8  # MinHash values per band (num_perm = bands × rows = 112)
    seed: int = 1  # seed of the MinHash permutations
    min_jaccard: float = 0.7  # candidate pairs must also have estimated Jaccard ≥ this (0 trusts LSH alone)
    guard_cluster_size: int = 50  # clusters larger than this get sampled member pairs checked on their text
    guard_pairs: int = 16  # member pairs sampled per large cluster
    guard_max_below: float = 0.25  # more sampled pairs than this fraction under the threshold: split the cluster
    partition_bytes: int = PARTITION_BYTES  # memory of one partition of band keys while clustering (any corpus size)

    def __post_init__(self) -> None:
        if self.partition_bytes < 1 << 12:
            raise ValueError(f"near_dedup.partition_bytes must be at least 4096, got {self.partition_bytes}")
        if self.ngram_size < 1 or self.bands < 2 or self.rows < 1:
            raise ValueError("near_dedup needs ngram_size ≥ 1, bands ≥ 2 and rows ≥ 1")
        if not 0.0 <= self.min_jaccard <= 1.0:
            raise ValueError(f"near_dedup.min_jaccard must be within [0, 1], got {self.min_jaccard}")
        if self.guard_cluster_size < 2 or self.guard_pairs < 1:
            raise ValueError("near_dedup needs guard_cluster_size ≥ 2 and guard_pairs ≥ 1")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    @property
    def threshold(self) -> float:
        """The Jaccard similarity above which two documents count as duplicates."""
        return self.min_jaccard if self.min_jaccard > 0 else (1 / self.bands) ** (1 / self.rows)


class Dedup(Step):
    """A global step: `sign` documents in batches, `cluster` all signatures at once, then drop."""

    def __init__(self, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.cluster_sizes: Counter = Counter()  # size of clusters with duplicates → clusters
        self.matched_index = 0  # documents removed as duplicates of an earlier batch in the index
        self.state_bytes_per_document = 0.0  # pass-one memory per document (set by the pipeline)

    def sign(self, docs: Sequence[Document]) -> np.ndarray:
        """Pass one: one signature row per document (a pure function of the text and config)."""
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        """What signatures depend on: an index made with other values cannot be reused."""
        raise NotImplementedError

    def cluster(self, signatures: np.ndarray, rank: np.ndarray, new: int, texts: TextsFn) -> np.ndarray:
        """A cluster label per row (rows `new`.. come from the index); `rank` orders rows by preference."""
        raise NotImplementedError

    def partition_keys(self, signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Out of core (dataprep/dedup_disk.py): uint64 keys per (row, band) whose equal values make
        candidate pairs, and a second key per (row, band) that must also be equal (or None)."""
        raise NotImplementedError

    def verify(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Which candidate pairs (signature rows `a[i]`, `b[i]`) are duplicates."""
        return np.ones(len(a), dtype=bool)

    def guard_clusters(self, labels: np.ndarray, signatures: Callable[[np.ndarray], np.ndarray], rank: np.ndarray,
              rows: np.ndarray, new: int, texts: TextsFn) -> np.ndarray:
        """Out of core: check large clusters (labels of nodes `rows`, renumbered rows as `cluster` sees them)."""
        return labels

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        """Both passes over `docs`, which must be re-iterable (a list, or shards read again)."""
        if iter(docs) is docs:
            raise TypeError(f"{self.name}: needs documents it can read twice (a list or a re-readable source)")
        signed = sign_documents([self], docs)
        texts = texts_from(docs)
        decisions = resolve([self], signed, texts=texts)
        yield from apply(decisions, 0, docs, self.on_remove)

    def stats(self) -> dict[str, Any]:
        figures = {**super().stats(), "matched_index": self.matched_index}
        if self.state_bytes_per_document:
            figures["state_bytes_per_document"] = self.state_bytes_per_document
        return figures


class ExactDedup(Dedup):
    """Removes documents whose (normalised) text equals another's."""

    name = "exact_dedup"

    def __init__(self, config: ExactDedupConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config

    def sign(self, docs: Sequence[Document]) -> np.ndarray:
        digests = bytearray()
        for doc in docs:
            text = " ".join(doc.text.casefold().split()) if self.config.normalize_text else doc.text
            digests += hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
        return np.frombuffer(bytes(digests), dtype=np.uint64).reshape(len(docs), 2)

    def fingerprint(self) -> dict[str, Any]:
        return {"normalize_text": self.config.normalize_text}

    def cluster(self, signatures: np.ndarray, rank: np.ndarray, new: int, texts: TextsFn) -> np.ndarray:
        if not len(signatures):
            return np.zeros(0, dtype=np.int64)
        _, labels = np.unique(signatures, axis=0, return_inverse=True)
        return labels.reshape(-1).astype(np.int64)

    def partition_keys(self, signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return signatures[:, :1], signatures[:, 1:]  # the whole 128-bit digest must be equal


class NearDedup(Dedup):
    """MinHash over word n-grams, banded LSH, candidate pairs checked, clusters by connected components."""

    name = "near_dedup"

    def __init__(self, config: NearDedupConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.hasher = MinHasher(config.num_perm, config.ngram_size, config.seed)
        self.guard: Counter = Counter()  # large clusters checked / split

    def sign(self, docs: Sequence[Document]) -> np.ndarray:
        return self.hasher.sign([d.text for d in docs])

    def fingerprint(self) -> dict[str, Any]:
        c = self.config
        return {"minhash": "mix64-mulshift32-v2", "ngram_size": c.ngram_size, "bands": c.bands, "rows": c.rows, "seed": c.seed}

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "guard": dict(sorted(self.guard.items()))}

    def candidate_edges(self, signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of rows sharing a band key whose estimated Jaccard passes `min_jaccard`, deduplicated."""
        c = self.config
        keys = band_keys(signatures, c.bands, c.rows)
        members, firsts = [], []
        for band in range(c.bands):
            m, f = band_edges(keys[:, band])
            if c.min_jaccard > 0 and len(m):
                agree = np.count_nonzero(signatures[m] == signatures[f], axis=1) / c.num_perm
                m, f = m[agree >= c.min_jaccard], f[agree >= c.min_jaccard]
            members.append(m)
            firsts.append(f)
        m, f = np.concatenate(members), np.concatenate(firsts)
        if len(m):
            pairs = np.unique(np.stack([m, f], axis=1), axis=0)
            m, f = pairs[:, 0], pairs[:, 1]
        return m, f

    def partition_keys(self, signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return band_keys(signatures, self.config.bands, self.config.rows), None

    def verify(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.config.min_jaccard <= 0:
            return np.ones(len(a), dtype=bool)
        return np.count_nonzero(a == b, axis=1) / self.config.num_perm >= self.config.min_jaccard

    def cluster(self, signatures: np.ndarray, rank: np.ndarray, new: int, texts: TextsFn) -> np.ndarray:
        labels = components(len(signatures), *self.candidate_edges(signatures))
        rows = np.arange(len(signatures))
        return self.guard_clusters(labels, lambda nodes: signatures[nodes], rank, rows, new, texts)

    def guard_clusters(self, labels: np.ndarray, signatures: Callable[[np.ndarray], np.ndarray], rank: np.ndarray,
              rows: np.ndarray, new: int, texts: TextsFn) -> np.ndarray:
        """Check sampled member pairs of every large cluster on their real shingles; split false ones.

        Chains of near-duplicates (A≈B, B≈C, ...) can join documents that share little: if too many
        sampled pairs are under the threshold, the cluster is rebuilt around centres (each member,
        best first, joins the first centre whose estimated Jaccard passes, or becomes one).
        `labels`, `rank` and `rows` (each node's row among this step's documents, the index's from
        `new` on: the sampling's seed) are per node; `signatures` and `texts` take node numbers.
        """
        c = self.config
        sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
        large = np.flatnonzero(sizes > c.guard_cluster_size)
        if not len(large):
            return labels
        samples: dict[int, list[tuple[int, int]]] = {}
        for label in large:
            members = np.flatnonzero(labels == label)
            members = members[rows[members] < new]  # only this batch's texts can be read again
            if len(members) < 2:
                continue
            rng = np.random.Generator(np.random.PCG64([c.seed, int(rows[members[0]])]))
            pairs = [tuple(int(x) for x in rng.choice(members, 2, replace=False)) for _ in range(c.guard_pairs)]
            samples[int(label)] = pairs
        wanted = sorted({n for pairs in samples.values() for pair in pairs for n in pair})
        text_of = texts(wanted) if wanted else {}
        shingles = {n: self.hasher.shingle_set(text_of[n]) for n in wanted}
        next_label = int(labels.max()) + 1
        for label, pairs in samples.items():
            self.guard["checked"] += 1
            below = sum(jaccard(shingles[a], shingles[b]) < c.threshold for a, b in pairs)
            if below <= c.guard_max_below * len(pairs):
                continue
            self.guard["split"] += 1
            members = np.flatnonzero(labels == label)
            members = members[np.argsort(rank[members], kind="stable")]
            member_signatures = signatures(members)
            centres: list[int] = []  # positions in `members`
            for i, member in enumerate(members):
                if centres:
                    agree = np.count_nonzero(member_signatures[centres] == member_signatures[i], axis=1) / c.num_perm
                    hit = np.flatnonzero(agree >= c.threshold)
                    if len(hit):
                        labels[member] = labels[members[centres[hit[0]]]]
                        continue
                labels[member] = label if not centres else next_label
                next_label += 0 if not centres else 1
                centres.append(i)
        return labels


def components(size: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected components of the graph on 0..size-1 with edges (a[i], b[i]), numbered in the order
    of their smallest member. Numpy hooking and pointer jumping: every round joins each edge's two
    roots (the larger onto the smaller) and flattens the trees, O(edges) per round and few rounds."""
    labels = np.arange(size, dtype=np.int64)
    if not len(a):
        return labels
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    while True:
        la, lb = labels[a], labels[b]
        differ = la != lb
        if not differ.any():
            break
        la, lb = la[differ], lb[differ]
        np.minimum.at(labels, np.maximum(la, lb), np.minimum(la, lb))  # roots only: no cycles
        while True:  # point every node at its root
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
    return np.unique(labels, return_inverse=True)[1].reshape(-1).astype(np.int64)


@dataclass
class Signed:
    """Pass one's result for a run of documents: what `resolve` needs, nothing more."""

    ids: list[str] = field(default_factory=list)
    lengths: list[np.ndarray] = field(default_factory=list)
    signatures: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, steps: Sequence[Dedup], docs: Sequence[Document]) -> None:
        self.ids.extend(d.id for d in docs)
        self.lengths.append(np.fromiter((len(d.text) for d in docs), dtype=np.int64, count=len(docs)))
        for step in steps:
            self.signatures.setdefault(step.name, []).append(step.sign(docs))

    @classmethod
    def concat(cls, parts: Sequence["Signed"]) -> "Signed":
        whole = cls()
        for part in parts:
            whole.ids.extend(part.ids)
            whole.lengths.extend(part.lengths)
            for name, rows in part.signatures.items():
                whole.signatures.setdefault(name, []).extend(rows)
        return whole

    def length_array(self) -> np.ndarray:
        return np.concatenate(self.lengths) if self.lengths else np.zeros(0, dtype=np.int64)

    def signature_array(self, name: str, width: int = 0) -> np.ndarray:
        rows = self.signatures.get(name, [])
        return np.concatenate(rows) if rows else np.zeros((0, width), dtype=np.uint32)

    def bytes_per_document(self) -> float:
        """State memory per document: signatures, lengths and ids (str objects and list slots)."""
        n = max(len(self.ids), 1)
        arrays = sum(r.nbytes for rows in self.signatures.values() for r in rows) + sum(r.nbytes for r in self.lengths)
        ids = sum(49 + len(i) + 8 for i in self.ids)
        return (arrays + ids) / n


def sign_documents(steps: Sequence[Dedup], docs: Iterable[Document], batch: int = BATCH) -> Signed:
    """Pass one over `docs`, in batches."""
    signed, pending = Signed(), []
    for doc in docs:
        pending.append(doc)
        if len(pending) >= batch:
            signed.add(steps, pending)
            pending = []
    if pending or not signed.ids:
        signed.add(steps, pending)
    return signed


@dataclass
class Decisions:
    """Per document (pass-one order): removed by which step (-1: kept) and the survivor it leads to."""

    ids: list[str]
    removed_by: np.ndarray  # int8: index into `reasons`, -1 for kept
    survivor: list[str]  # id of the survivor (itself when kept; possibly a document of an earlier batch)
    cluster_size: np.ndarray  # documents a survivor stands for (itself included)
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, lo: int, hi: int) -> "Decisions":
        return Decisions(self.ids[lo:hi], self.removed_by[lo:hi], self.survivor[lo:hi], self.cluster_size[lo:hi], self.reasons)


@dataclass
class IndexRows:
    """Documents of earlier batches (from `dataprep.index.DedupIndex`) for one step."""

    ids: list[str]
    lengths: np.ndarray
    signatures: np.ndarray


def resolve(
    steps: Sequence[Dedup],
    signed: Signed,
    texts: TextsFn,
    index: dict[str, IndexRows] | None = None,
) -> Decisions:
    """Cluster every document with each step in turn (on the survivors of the one before) and decide.

    Sets the steps' counts (documents in/out, removed, cluster sizes) as a side effect.
    """
    ids = signed.ids
    n = len(ids)
    lengths = signed.length_array()
    id_rank = np.empty(n, dtype=np.int64)
    id_rank[np.argsort(np.asarray(ids, dtype=object), kind="stable")] = np.arange(n)
    alive = np.ones(n, dtype=bool)
    removed_by = np.full(n, -1, dtype=np.int8)
    parent: list[int | str] = list(range(n))  # a new document's survivor: a number, or an index id
    weight = np.ones(n, dtype=np.int64)
    for k, step in enumerate(steps):
        numbers = np.flatnonzero(alive)
        old = (index or {}).get(step.name)
        old_n = len(old.ids) if old else 0
        step.documents_in = len(numbers)
        signatures = signed.signature_array(step.name)[numbers]
        all_ids = [ids[i] for i in numbers] + (old.ids if old else [])
        all_lengths = np.concatenate([lengths[numbers], old.lengths]) if old else lengths[numbers]
        if old:
            signatures = np.concatenate([signatures, old.signatures.astype(signatures.dtype)])
        # preference: earlier batches first, then longest, then smallest id
        order = np.lexsort((np.asarray(all_ids, dtype=object).argsort(kind="stable").argsort(),
                            -all_lengths, np.r_[np.ones(len(numbers)), np.zeros(old_n)]))
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))

        def batch_texts(rows: Sequence[int], numbers: np.ndarray = numbers) -> dict[int, str]:
            got = texts([int(numbers[r]) for r in rows])
            return {r: got[int(numbers[r])] for r in rows}

        labels = step.cluster(signatures, rank, len(numbers), batch_texts)
        # the first row of each label in preference order is its keeper
        unique_labels, first = np.unique(labels[order], return_index=True)
        keeper_of = np.empty(int(labels.max()) + 1 if len(labels) else 0, dtype=np.int64)
        keeper_of[unique_labels] = order[first]
        keeper = keeper_of[labels]
        sizes = np.bincount(labels)
        step.cluster_sizes = Counter(int(s) for s in sizes[sizes > 1])
        for row in np.flatnonzero(keeper[: len(numbers)] != np.arange(len(numbers))):
            number = int(numbers[row])
            target = int(keeper[row])
            alive[number] = False
            removed_by[number] = k
            step.removed[step.name] += 1
            if target < len(numbers):
                parent[number] = int(numbers[target])
                weight[numbers[target]] += weight[number]
            else:
                parent[number] = all_ids[target]
                step.matched_index += 1
        step.documents_out = int(alive.sum())
    survivor = []
    for number in range(n):
        p = parent[number]
        while isinstance(p, int) and parent[p] != p:
            p = parent[p]
        survivor.append(p if isinstance(p, str) else ids[p])
    sizes = np.where(alive, weight, 0)
    return Decisions(list(ids), removed_by, survivor, sizes, [s.name for s in steps])


def apply(decisions: Decisions, start: int, docs: Iterable[Document], on_remove: RemoveCallback | None) -> Iterator[Document]:
    """Pass two: yield survivors (with `cluster_id`, `cluster_size`); hand duplicates to `on_remove`.

    `docs` are the documents numbered `start`, `start + 1`, ... in pass one.
    """
    for number, doc in enumerate(docs, start=start):
        if doc.id != decisions.ids[number]:
            raise RuntimeError(f"dedup pass two read '{doc.id}' where pass one read '{decisions.ids[number]}'")
        by = int(decisions.removed_by[number])
        if by < 0:
            doc.meta["cluster_id"] = decisions.survivor[number]
            doc.meta["cluster_size"] = int(decisions.cluster_size[number])
            yield doc
        else:
            doc.meta["duplicate_of"] = decisions.survivor[number]
            if on_remove is not None:
                on_remove(doc, decisions.reasons[by])


@dataclass
class ShardDecisions:
    """Pass two's decisions for one task's documents, listing only those in a duplicate cluster: every
    other document is kept as a cluster of one (`cluster_id` its own id, `cluster_size` 1)."""

    rows: np.ndarray  # int64, ascending: numbers of the listed documents within the task
    ids: list[str]
    removed_by: np.ndarray  # int8: index into `reasons`, -1 for kept
    survivor: list[str]
    cluster_size: np.ndarray  # documents a survivor stands for
    reasons: list[str]

    def __len__(self) -> int:
        return len(self.rows)


def apply_listed(decisions: ShardDecisions, docs: Iterable[Document], on_remove: RemoveCallback | None) -> Iterator[Document]:
    """Pass two with `ShardDecisions`: what `apply` does, the unlisted documents kept as their own cluster."""
    rows, at = decisions.rows, 0
    for number, doc in enumerate(docs):
        if at < len(rows) and rows[at] == number:
            if doc.id != decisions.ids[at]:
                raise RuntimeError(f"dedup pass two read '{doc.id}' where pass one read '{decisions.ids[at]}'")
            by, survivor, size = int(decisions.removed_by[at]), decisions.survivor[at], int(decisions.cluster_size[at])
            at += 1
        else:
            by, survivor, size = -1, doc.id, 1
        if by < 0:
            doc.meta["cluster_id"] = survivor
            doc.meta["cluster_size"] = size
            yield doc
        else:
            doc.meta["duplicate_of"] = survivor
            if on_remove is not None:
                on_remove(doc, decisions.reasons[by])
    if at < len(rows):
        raise RuntimeError(f"dedup pass two read fewer documents than pass one (missing '{decisions.ids[at]}')")


def texts_from(docs: Iterable[Document]) -> TextsFn:
    """Texts by document number, read again from a re-iterable source (for the large-cluster guard)."""

    def texts(numbers: Sequence[int]) -> dict[int, str]:
        wanted = set(numbers)
        return {n: d.text for n, d in enumerate(docs) if n in wanted}

    return texts
