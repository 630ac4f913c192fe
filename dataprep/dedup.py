"""Exact and near-duplicate removal: global steps in two passes over re-readable documents.

This module decides in memory (a step's `run` on a list of documents, and the reference the tests
compare with); `tokenmill prepare` and `tokenmill dedup` decide the same out of core, with memory that
does not grow with the corpus (dataprep/dedup_disk.py, docs/scaling.md).

Pass one signs every document in batches (`Dedup.sign`: a 16-byte digest, or a MinHash of
`bands x rows` uint32s) and keeps only the signatures, ids and lengths. `resolve` then clusters all
of them at once (and against an incremental index of earlier batches, when one is given), and pass
two re-reads the documents (the input shards; nothing is spooled) and drops the duplicates.

State per document: its id (a Python str, ~50 bytes + its length), its length (8 bytes), 16 bytes
for exact_dedup and 4 x bands x rows bytes for near_dedup (384 with the defaults); while clustering,
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

from dataprep.minhash import MinHasher, band_edges, band_keys, jaccard_sorted
from dataprep.step import RemoveCallback, Step
from tokenmill.documents import Document

BATCH = 1024  # documents signed at once
# Cluster members checked at once (their signatures, and the texts and shingles of those near the
# threshold). 1,024: on 20,935 short web-page-sized documents near-dedup's peak RSS 157 -> 143 MB against
# 32,768, in the same time (the state files' reads are cheap since their headers are cached); same output.
EXACT_BATCH = 1 << 10
PAIRWISE_MAX = 512  # chained clusters up to this size get all their pairs estimated at once
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
    # LSH: a pair at Jaccard 0.7 shares a band with probability 1 - (1 - 0.7^4)^24 ≈ 0.9999 (14 x 8 was
    # 0.56: near-duplicates with no candidate path were lost); the candidates are then checked.
    bands: int = 24  # LSH bands
    rows: int = 4  # MinHash values per band (num_perm = bands × rows = 96)
    seed: int = 1  # seed of the MinHash permutations
    min_jaccard: float = 0.7  # duplicates have (estimated) Jaccard ≥ this (0: the LSH threshold, candidates unchecked)
    exact_margin: float = 0.1  # estimates this close to min_jaccard are checked on the texts (0: estimates decide)
    partition_bytes: int = PARTITION_BYTES  # memory of one partition of band keys while clustering (any corpus size)

    def __post_init__(self) -> None:
        if self.partition_bytes < 1 << 12:
            raise ValueError(f"near_dedup.partition_bytes must be at least 4096, got {self.partition_bytes}")
        if self.ngram_size < 1 or self.bands < 2 or self.rows < 1:
            raise ValueError("near_dedup needs ngram_size ≥ 1, bands ≥ 2 and rows ≥ 1")
        if not 0.0 <= self.min_jaccard <= 1.0:
            raise ValueError(f"near_dedup.min_jaccard must be within [0, 1], got {self.min_jaccard}")
        if not 0.0 <= self.exact_margin < 0.5:
            raise ValueError(f"near_dedup.exact_margin must be within [0, 0.5), got {self.exact_margin}")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    @property
    def threshold(self) -> float:
        """The Jaccard similarity above which two documents count as duplicates."""
        return self.min_jaccard if self.min_jaccard > 0 else (1 / self.bands) ** (1 / self.rows)

    @property
    def edge_threshold(self) -> float:
        """Candidate pairs kept as edges: those whose estimate may still reach the threshold on the texts."""
        return self.min_jaccard - self.exact_margin


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

    def split_chains(self, labels: np.ndarray, signatures: Callable[[np.ndarray], np.ndarray], rank: np.ndarray,
                     texts: TextsFn, readable: np.ndarray) -> np.ndarray:
        """Out of core: make sure each removed document matches its keeper (NearDedup)."""
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
        self.chains: Counter = Counter()  # clusters split (a member failed its keeper), centres that made

    def sign(self, docs: Sequence[Document]) -> np.ndarray:
        return self.hasher.sign([d.text for d in docs])

    def fingerprint(self) -> dict[str, Any]:
        c = self.config
        return {"minhash": "mix64-mulshift32-v2", "ngram_size": c.ngram_size, "bands": c.bands, "rows": c.rows, "seed": c.seed}

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "chains": dict(sorted(self.chains.items()))}

    def candidate_edges(self, signatures: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pairs of rows sharing a band key whose estimated Jaccard may reach `min_jaccard`, deduplicated."""
        c = self.config
        keys = band_keys(signatures, c.bands, c.rows)
        members, firsts = [], []
        for band in range(c.bands):
            m, f = band_edges(keys[:, band])
            if c.min_jaccard > 0 and len(m):
                agree = np.count_nonzero(signatures[m] == signatures[f], axis=1) / c.num_perm
                m, f = m[agree >= c.edge_threshold], f[agree >= c.edge_threshold]
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
        return np.count_nonzero(a == b, axis=1) / self.config.num_perm >= self.config.edge_threshold

    def cluster(self, signatures: np.ndarray, rank: np.ndarray, new: int, texts: TextsFn) -> np.ndarray:
        labels = components(len(signatures), *self.candidate_edges(signatures))
        return self.split_chains(labels, lambda nodes: signatures[nodes], rank, texts, np.arange(len(labels)) < new)

    def split_chains(self, labels: np.ndarray, signatures: Callable[[np.ndarray], np.ndarray], rank: np.ndarray,
                     texts: TextsFn, readable: np.ndarray) -> np.ndarray:
        """Every document a cluster removes must reach the threshold with the survivor it names.

        Connected components chain: A≈B and B≈C join A and C, which may share little (revisions of
        revisions, a page quoting two others). On real texts with near-duplicates made as the web makes
        them (bench/near_dedup_quality.py), 93 % of the documents removed wrongly were such chain ends,
        the rest estimates at the threshold. So each member is checked against its cluster's keeper; in
        a cluster where one fails, members are taken best first and each joins the first centre it
        matches, or becomes a centre (kept). `matches` decides a pair: by the signatures, and on the
        texts' shingles when the estimate is within `exact_margin` of the threshold and both texts can
        be read (`readable`: not documents of an earlier batch). `labels`, `rank` (lower is preferred)
        and `readable` are per node; `signatures` and `texts` take node numbers.
        """
        if not len(labels):
            return labels
        order = np.lexsort((rank, labels))  # by cluster, best first
        starts = np.ones(len(order), dtype=bool)
        starts[1:] = labels[order][1:] != labels[order][:-1]
        head = np.empty(len(labels), dtype=np.int64)
        head[order] = order[np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))]
        members = np.flatnonzero(head != np.arange(len(labels)))
        failing: list[np.ndarray] = []
        cache: dict[int, np.ndarray] = {}  # shingles of the last batch's unsure members, by node
        for lo in range(0, len(members), EXACT_BATCH):  # bounded memory: a batch of signatures and texts at a time
            part = members[lo : lo + EXACT_BATCH]
            cache = {}
            fit = self.matches(signatures(part), signatures(head[part]), part, head[part], texts, readable, cache)
            failing.append(labels[part[~fit]])
        failing_labels = np.unique(np.concatenate(failing)) if failing else np.zeros(0, dtype=np.int64)
        in_failing = np.isin(labels[order], failing_labels)
        clusters = np.split(order[in_failing], np.flatnonzero(starts[in_failing])[1:]) if in_failing.any() else []
        next_label, at = int(labels.max()) + 1, 0
        while at < len(clusters):  # a batch of whole clusters at a time: the texts they need read at once
            batch, size = [], 0
            while at < len(clusters) and (not batch or size + len(clusters[at]) <= EXACT_BATCH):
                size += len(clusters[at])
                batch.append(clusters[at])
                at += 1
            # one read for the whole batch: out of core, each read opens every shard's file it touches
            signed = np.split(signatures(np.concatenate(batch)), np.cumsum([len(c) for c in batch])[:-1])
            estimates = [self.estimates(sig) if len(sig) <= PAIRWISE_MAX else None for sig in signed]
            unsure = [cluster[self.unsure_nodes(e, readable[cluster]) if e is not None else readable[cluster]]
                      for cluster, e in zip(batch, estimates)]
            needed = np.unique(np.concatenate(unsure))
            shingles = {n: cache[n] for n in needed.tolist() if n in cache}
            shingles.update(self.shingles(texts, needed[~np.isin(needed, np.fromiter(shingles, dtype=np.int64))]))
            for cluster, sig, estimate in zip(batch, signed, estimates):
                next_label = self.recentre(cluster, sig, estimate, shingles, readable, labels, next_label)
        return labels

    def estimates(self, signatures: np.ndarray) -> np.ndarray:
        """Estimated Jaccard of every pair of a cluster's members."""
        agree = np.empty((len(signatures), len(signatures)), dtype=np.float32)
        for i in range(len(signatures)):
            agree[i] = np.count_nonzero(signatures == signatures[i], axis=1)
        return agree / self.config.num_perm

    def unsure_nodes(self, estimates: np.ndarray, readable: np.ndarray) -> np.ndarray:
        """Positions of members in a pair whose estimate is too close to the threshold to decide by."""
        near = np.abs(estimates - self.config.threshold) < self.config.exact_margin
        near &= readable[:, None] & readable[None, :]
        return np.flatnonzero(near.any(axis=0))

    def recentre(self, cluster: np.ndarray, signatures: np.ndarray, estimates: np.ndarray | None,
                 shingles: dict[int, np.ndarray], readable: np.ndarray, labels: np.ndarray, next_label: int) -> int:
        """Members of a chained cluster (best first) join the first centre they match or become one.
        `estimates`: every pair's estimate (a cluster of at most PAIRWISE_MAX), or None (made per member)."""
        c = self.config
        self.chains["split"] += 1
        centres: list[int] = []  # positions in `cluster`
        for i, node in enumerate(cluster.tolist()):
            row = estimates[i] if estimates is not None else np.zeros(len(cluster), dtype=np.float32)
            if estimates is None and centres:
                row[centres] = np.count_nonzero(signatures[centres] == signatures[i], axis=1) / c.num_perm
            for j in centres:
                estimate, other = row[j], int(cluster[j])
                if abs(estimate - c.threshold) < c.exact_margin and readable[node] and readable[other]:
                    self.chains["exact_checks"] += 1
                    fit = jaccard_sorted(shingles[node], shingles[other]) >= c.threshold
                else:
                    fit = estimate >= c.threshold
                if fit:
                    labels[node] = labels[other]
                    break
            else:
                if centres:
                    labels[node] = next_label
                    next_label += 1
                    self.chains["centres_added"] += 1
                centres.append(i)
        return next_label

    def matches(self, a: np.ndarray, b: np.ndarray, a_nodes: np.ndarray, b_nodes: np.ndarray, texts: TextsFn,
                readable: np.ndarray, cache: dict[int, np.ndarray]) -> np.ndarray:
        """Which pairs (signature rows `a[i]`, `b[i]` of nodes `a_nodes[i]`, `b_nodes[i]`) reach the threshold:
        the estimate decides, unless it is within `exact_margin` of the threshold and both texts can be read
        (their shingles kept in `cache` for the clusters that are split after)."""
        c = self.config
        estimate = np.count_nonzero(a == b, axis=1) / c.num_perm
        fit = estimate >= c.threshold
        unsure = np.flatnonzero((np.abs(estimate - c.threshold) < c.exact_margin) & readable[a_nodes] & readable[b_nodes])
        if len(unsure):
            pairs = [(int(a_nodes[i]), int(b_nodes[i])) for i in unsure]
            cache.update(self.shingles(texts, np.setdiff1d(np.array(pairs), np.fromiter(cache, dtype=np.int64))))
            fit[unsure] = [jaccard_sorted(cache[x], cache[y]) >= c.threshold for x, y in pairs]
            self.chains["exact_checks"] += len(pairs)
        return fit

    def shingles(self, texts: TextsFn, nodes: np.ndarray) -> dict[int, np.ndarray]:
        """Each node's distinct shingle hashes, sorted, from its text."""
        if not len(nodes):
            return {}
        found = texts(nodes.tolist())
        return dict(zip(found, self.hasher.shingle_arrays(list(found.values()))))


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
