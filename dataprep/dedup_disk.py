"""Dedup out of core: the same decisions as `dataprep.dedup.resolve`, without the corpus's state in memory.

    pass one, per shard (a task)      signatures, ids, lengths and band keys (sorted per band) to disk
    per partition (a task)            one band's keys in one key range from every shard, sorted: runs of
                                      equal keys give candidate pairs (each member with the run's first),
                                      verified on the signatures (min_jaccard); edges to disk
    driver                            connected components over the verified edges only, the giant-cluster
                                      guard, the keeper of each cluster; sparse decisions per shard
    pass two, per shard (a task)      drops the duplicates (dataprep/distributed.py)

Memory. A pass-one task holds one shard's signatures (384 bytes a document with the defaults, plus
exact_dedup's 16 and 24 x 12 bytes of sorted band keys). A partition task holds at most
`partition_bytes` (`near_dedup.partition_bytes`, `exact_dedup.partition_bytes`; about ENTRY_BYTES per
band key it sorts), whatever the corpus size: the number of key ranges grows with the corpus instead.
The driver holds nothing per document: only per document *in a duplicate cluster* (its number, label,
length, id and decision: about 150 bytes plus its id), and 16 bytes per verified edge while it takes
the components (at most `bands` edges per duplicate, usually fewer). A corpus without duplicates needs
the same driver memory at any size.

The state lives under the stage's work directory, which Dask workers must share with the driver (as
they share the shards they write).
"""

from __future__ import annotations

import math
import mmap
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from dataprep.dedup import BATCH, Dedup, ShardDecisions, TextsFn, components
from tokenmill.documents import Document

ENTRY_BYTES = 64  # memory per band key while a partition is sorted: key, second key, number, order, copies
KEY_SPACE = 1 << 64
RunAll = Callable[[Callable, list[tuple], str], list]  # (function, argument tuples, description) -> results


@dataclass
class ShardState:
    """What pass one wrote for one shard (or for one batch of the dedup index) to `directory`."""

    directory: str
    documents: int
    names: list[str]  # dedup steps signed
    state_bytes: int = 0  # what the in-memory path would hold for these documents (stats: state_bytes_per_document)
    new: bool = True  # False: a batch of the index (preferred over new documents, never removed)


def write_state(steps: Sequence[Dedup], docs: Iterable[Document], directory: str | Path) -> ShardState:
    """Pass one for one shard: sign `docs` in batches and write their state to `directory`."""
    ids: list[str] = []
    lengths: list[int] = []
    signatures: dict[str, list[np.ndarray]] = {s.name: [] for s in steps}
    pending: list[Document] = []

    def flush() -> None:
        for step in steps:
            signatures[step.name].append(step.sign(pending))
        pending.clear()

    for doc in docs:
        ids.append(doc.id)
        lengths.append(len(doc.text))
        pending.append(doc)
        if len(pending) >= BATCH:
            flush()
    flush()
    arrays = {name: np.concatenate(rows) for name, rows in signatures.items()}
    return save_state(steps, directory, ids, np.array(lengths, dtype=np.int64), arrays)


def save_state(steps: Sequence[Dedup], directory: str | Path, ids: Sequence[str], lengths: np.ndarray,
               signatures: dict[str, np.ndarray], new: bool = True) -> ShardState:
    """Write ids, lengths, and per step its signatures and its keys sorted per band (with their rows)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    encoded = [i.encode("utf-8") for i in ids]
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    np.save(out / "ids.npy", np.frombuffer(b"".join(encoded), dtype=np.uint8))
    np.save(out / "id_offsets.npy", offsets)
    np.save(out / "lengths.npy", lengths)
    for step in steps:
        if step.name not in signatures:
            continue
        sig = signatures[step.name]
        np.save(out / f"sig-{step.name}.npy", sig)
        keys, ties = step.partition_keys(sig)
        order = np.stack([np.lexsort((ties[:, b], keys[:, b])) if ties is not None else np.argsort(keys[:, b], kind="stable")
                          for b in range(keys.shape[1])]) if len(sig) else np.zeros((keys.shape[1], 0), dtype=np.int64)
        bands = np.arange(keys.shape[1])[:, None]
        np.save(out / f"keys-{step.name}.npy", np.ascontiguousarray(keys.T[bands, order]))
        np.save(out / f"rows-{step.name}.npy", order.astype(np.uint32))
        if ties is not None:
            np.save(out / f"ties-{step.name}.npy", np.ascontiguousarray(ties.T[bands, order]))
    state_bytes = sum(a.nbytes for a in signatures.values()) + lengths.nbytes + sum(57 + len(i) for i in ids)
    return ShardState(str(out), len(ids), [s.name for s in steps if s.name in signatures], state_bytes, new)


HEADERS_KEPT = 65536
_HEADERS: dict[tuple[str, int, int], tuple[tuple[int, ...], bool, np.dtype, int]] = {}


def load(directory: str, name: str) -> np.ndarray:
    """DIRECTORY/NAME.npy mapped read-only (pages read when touched). Partition tasks and the driver open
    the same small files thousands of times, so each file's header is parsed once (numpy's
    np.load(mmap_mode) parsed it, and opened the file twice, on every call: a fifth of near-dedup's time on
    short documents)."""
    path = os.path.join(directory, f"{name}.npy")
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        key = (path, info.st_mtime_ns, info.st_size)
        header = _HEADERS.get(key)
        if header is None:
            if len(_HEADERS) >= HEADERS_KEPT:  # a long-lived worker runs many dedups
                _HEADERS.clear()
            version = np.lib.format.read_magic(handle)
            if version not in ((1, 0), (2, 0)):  # 3.0: structured dtypes with non-Latin-1 names; not ours
                return np.load(path, mmap_mode="r")
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(handle) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(handle))
            header = _HEADERS[key] = (shape, fortran, dtype, handle.tell())
        shape, fortran, dtype, offset = header
        count = math.prod(shape)
        if count == 0 or dtype.itemsize == 0:  # nothing to map (mmap refuses an empty range)
            empty = np.zeros(shape, dtype=dtype)
            empty.flags.writeable = False
            return empty
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)  # lives as long as the array
    return np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape, order="F" if fortran else "C")


@dataclass
class Numbering:
    """The documents one step clusters: shards numbered one after the other (new ones first)."""

    shards: list[ShardState]
    starts: np.ndarray  # first number of each shard, then the total
    new: int  # numbers below this are new documents

    @classmethod
    def of(cls, states: Sequence[ShardState], name: str) -> "Numbering":
        shards = [s for s in states if name in s.names and s.new] + [s for s in states if name in s.names and not s.new]
        starts = np.zeros(len(shards) + 1, dtype=np.int64)
        np.cumsum([s.documents for s in shards], out=starts[1:])
        return cls(shards, starts, int(sum(s.documents for s in shards if s.new)))

    def gather(self, name: str, numbers: np.ndarray) -> np.ndarray:
        """Rows of the array file `name` (signatures, lengths) for document `numbers`, in their order."""
        numbers = np.asarray(numbers, dtype=np.int64)
        which = np.searchsorted(self.starts, numbers, side="right") - 1
        out = None
        for shard in np.unique(which):
            picked = which == shard
            values = load(self.shards[shard].directory, name)[numbers[picked] - self.starts[shard]]
            if out is None:
                out = np.empty((len(numbers), *values.shape[1:]), dtype=values.dtype)
            out[picked] = values
        return out if out is not None else np.zeros(0, dtype=np.int64)

    def ids(self, numbers: np.ndarray) -> list[str]:
        """The ids of document `numbers`, in their order."""
        numbers = np.asarray(numbers, dtype=np.int64)
        which = np.searchsorted(self.starts, numbers, side="right") - 1
        found: list[str] = [""] * len(numbers)
        for shard in np.unique(which).tolist():
            directory = self.shards[shard].directory
            offsets, blob = load(directory, "id_offsets"), load(directory, "ids")
            for position in np.flatnonzero(which == shard).tolist():
                row = int(numbers[position]) - int(self.starts[shard])
                found[position] = bytes(blob[offsets[row] : offsets[row + 1]]).decode("utf-8")
        return found


def partitions(step: Dedup, numbering: Numbering) -> list[tuple[int, int, int]]:
    """(band, first key, end key) of every partition: each band's key space cut into equal ranges,
    as many as keep one partition's keys within the step's `partition_bytes`."""
    bands = int(load(numbering.shards[0].directory, f"keys-{step.name}").shape[0]) if numbering.shards else 0
    per_partition = max(1, step.config.partition_bytes // ENTRY_BYTES)
    ranges = max(1, math.ceil(int(numbering.starts[-1]) / per_partition))
    cuts = [r * KEY_SPACE // ranges for r in range(ranges)] + [KEY_SPACE]
    return [(band, cuts[r], cuts[r + 1]) for band in range(bands) for r in range(ranges)]


def cluster_partition(step: Dedup, numbering: Numbering, band: int, lo: int, hi: int, dead_file: str,
                      edges_file: str) -> int:
    """One partition: its keys from every shard, sorted; each member of a run of equal keys paired with
    the run's first (the smallest number: what `band_edges` does in memory), pairs verified; edges
    (first, member) written to `edges_file`. Returns the number of edges."""
    keys, ties, numbers = [], [], []
    for shard, start in zip(numbering.shards, numbering.starts.tolist()):
        if not shard.documents:
            continue
        band_keys = load(shard.directory, f"keys-{step.name}")[band]
        i, j = np.searchsorted(band_keys, np.array([lo, min(hi, KEY_SPACE - 1)], dtype=np.uint64))
        j = len(band_keys) if hi == KEY_SPACE else j
        keys.append(np.array(band_keys[i:j]))
        numbers.append(start + load(shard.directory, f"rows-{step.name}")[band][i:j].astype(np.int64))
        if Path(shard.directory, f"ties-{step.name}.npy").exists():
            ties.append(np.array(load(shard.directory, f"ties-{step.name}")[band][i:j]))
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
    number = np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.int64)
    tie = np.concatenate(ties) if ties else np.zeros(len(key), dtype=np.uint64)
    dead = np.load(dead_file)
    if len(dead):  # removed by an earlier step of the group: not clustered again
        at = np.minimum(np.searchsorted(dead, number), len(dead) - 1)
        alive = dead[at] != number
        key, number, tie = key[alive], number[alive], tie[alive]
    order = np.lexsort((number, tie, key))
    key, tie, number = key[order], tie[order], number[order]
    same = np.zeros(len(key), dtype=bool)
    same[1:] = (key[1:] == key[:-1]) & (tie[1:] == tie[:-1])
    run_start = np.maximum.accumulate(np.where(same, 0, np.arange(len(key))))
    members, firsts = number[same], number[run_start[same]]
    if len(members):
        sig = f"sig-{step.name}"
        keep = step.verify(numbering.gather(sig, members), numbering.gather(sig, firsts))
        members, firsts = members[keep], firsts[keep]
    np.save(edges_file, np.stack([firsts, members], axis=1))
    return len(members)


def component_labels(edge_files: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The documents in verified edges (ascending) and their component labels (by smallest member)."""
    edges = [np.load(f) for f in edge_files]
    pairs = np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.int64)
    del edges
    nodes = np.unique(pairs)
    if not len(nodes):
        return nodes, np.zeros(0, dtype=np.int64)
    local = np.searchsorted(nodes, pairs)
    return nodes, components(len(nodes), local[:, 0], local[:, 1])


@dataclass
class GroupState:
    """What the steps of a dedup group decided so far, for documents in a duplicate cluster only."""

    removed_by: dict[int, int]
    parent: dict[int, int | str]  # a removed document's keeper: a number, or the id of an index document
    weight: dict[int, int]  # documents a kept one stands for (absent: 1)
    id_of: dict[int, str]
    dead: np.ndarray  # removed numbers, ascending


def resolve_on_disk(steps: Sequence[Dedup], states: Sequence[ShardState], texts: TextsFn, run_all: RunAll,
                    workdir: str | Path) -> list[ShardDecisions]:
    """`dataprep.dedup.resolve` out of core: the same decisions, one `ShardDecisions` per new shard.

    `texts` reads texts by new-document number; `run_all` runs partition tasks (here or on Dask).
    Sets the steps' counts as `resolve` does.
    """
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    new_states = [s for s in states if s.new]
    total = sum(s.documents for s in new_states)
    group = GroupState({}, {}, {}, {}, np.zeros(0, dtype=np.int64))
    for k, step in enumerate(steps):
        numbering = Numbering.of(states, step.name)
        step.documents_in = total - len(group.dead)
        dead_file = str(work / f"dead-{k}.npy")
        np.save(dead_file, group.dead)
        args = [(step, numbering, band, lo, hi, dead_file, str(work / f"edges-{k}-{n:05d}.npy"))
                for n, (band, lo, hi) in enumerate(partitions(step, numbering))]
        run_all(cluster_partition, args, f"{step.name} partitions")
        nodes, labels = component_labels([a[-1] for a in args])
        decide_step(k, step, numbering, nodes, labels, group, texts)
        step.documents_out = total - len(group.dead)
    return shard_decisions(new_states, group, [s.name for s in steps])


def decide_step(k: int, step: Dedup, numbering: Numbering, nodes: np.ndarray, labels: np.ndarray,
                group: GroupState, texts: TextsFn) -> None:
    """Split chained clusters, pick each cluster's keeper, record removals: `resolve`'s loop for one step."""
    is_new = nodes < numbering.new
    lengths = numbering.gather("lengths", nodes).astype(np.int64)
    ids = numbering.ids(nodes)
    id_rank = np.empty(len(nodes), dtype=np.int64)
    id_rank[np.argsort(np.asarray(ids, dtype=object), kind="stable")] = np.arange(len(nodes))
    order = np.lexsort((id_rank, -lengths, is_new))  # earlier batches first, then longest, then smallest id
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    def node_texts(positions: Sequence[int]) -> dict[int, str]:
        got = texts([int(nodes[p]) for p in positions])
        return {p: got[int(nodes[p])] for p in positions}

    labels = step.split_chains(labels, lambda p: numbering.gather(f"sig-{step.name}", nodes[p]), rank, node_texts,
                               is_new)
    unique_labels, first = np.unique(labels[order], return_index=True)
    keeper_of = np.empty(int(labels.max()) + 1 if len(labels) else 0, dtype=np.int64)
    keeper_of[unique_labels] = order[first]
    keeper = keeper_of[labels]
    sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    step.cluster_sizes = Counter(int(s) for s in sizes[sizes > 1])
    removed = []
    for p in np.flatnonzero((keeper != np.arange(len(nodes))) & is_new).tolist():
        number, target = int(nodes[p]), int(keeper[p])
        removed.append(number)
        group.removed_by[number] = k
        group.id_of[number] = ids[p]
        step.removed[step.name] += 1
        if is_new[target]:
            keeper_number = int(nodes[target])
            group.parent[number] = keeper_number
            group.id_of[keeper_number] = ids[target]
            group.weight[keeper_number] = group.weight.get(keeper_number, 1) + group.weight.get(number, 1)
        else:
            group.parent[number] = ids[target]
            step.matched_index += 1
    for p in np.flatnonzero(is_new).tolist():  # kept members are listed too (their cluster's size)
        group.id_of.setdefault(int(nodes[p]), ids[p])
    group.dead = np.union1d(group.dead, np.array(removed, dtype=np.int64))


def shard_decisions(states: Sequence[ShardState], group: GroupState, reasons: list[str]) -> list[ShardDecisions]:
    """Each new shard's listed documents: removed ones with their final survivor, kept ones with their size."""
    listed = np.array(sorted(group.id_of), dtype=np.int64)
    starts = np.zeros(len(states) + 1, dtype=np.int64)
    np.cumsum([s.documents for s in states], out=starts[1:])
    out = []
    for i in range(len(states)):
        mine = listed[(listed >= starts[i]) & (listed < starts[i + 1])]
        survivor, removed_by, sizes = [], [], []
        for number in mine.tolist():
            p: int | str = number
            while isinstance(p, int) and p in group.parent:
                p = group.parent[p]
            survivor.append(p if isinstance(p, str) else group.id_of[p])
            by = group.removed_by.get(number, -1)
            removed_by.append(by)
            sizes.append(group.weight.get(number, 1) if by < 0 else 0)
        out.append(ShardDecisions(mine - starts[i], [group.id_of[n] for n in mine.tolist()],
                                  np.array(removed_by, dtype=np.int8), survivor, np.array(sizes, dtype=np.int64),
                                  reasons))
    return out


def state_bytes_per_document(states: Sequence[ShardState]) -> float:
    """What the in-memory path held per document (signatures, lengths, ids): the stat it reported."""
    new = [s for s in states if s.new]
    return round(sum(s.state_bytes for s in new) / max(sum(s.documents for s in new), 1), 1)


def kept_rows(states: Sequence[ShardState], decisions: Sequence[ShardDecisions]) -> Any:
    """Per new shard, the rows of its documents that survived the group (for the index)."""
    for state, listed in zip(states, decisions):
        kept = np.ones(state.documents, dtype=bool)
        kept[listed.rows[listed.removed_by >= 0]] = False
        yield state, np.flatnonzero(kept)
