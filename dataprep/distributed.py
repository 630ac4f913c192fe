"""Runs the prepare steps shard by shard, in this process or on Dask workers, with the same output.

The step list is cut into segments at the dedup steps (global: they need every document):

    [normalize language quality repetition] [exact_dedup near_dedup] [pii]
     └────── per shard, in parallel ──────┘ └─ sign per shard, ─────┘ └ per shard ┘
                                               cluster globally

A task reads one input shard (or the survivors a task of the previous segment wrote), drops the
duplicates the previous dedup group decided (pass two), runs the segment's per-document steps, writes
its survivors as Parquet, and signs them for the next dedup group (pass one). The dedup group then
clusters all signatures at once in the driver (and against `--index`). Nothing depends on which
worker ran what: tasks are numbered by shard, outputs and removed documents are collected in that
order, and per-task counts are added up, so 1 and N workers write byte-identical results.

    --workers N              a LocalCluster of N single-threaded worker processes on 127.0.0.1
    prepare.dask.address     an existing scheduler (tcp://host:8786) instead
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from dataprep.dedup import Decisions, Dedup, Signed, apply, resolve, sign_documents
from dataprep.memory import give_back, lean_allocators
from dataprep.step import Step
from tokenmill.documents import SHARD_PATTERN, Document, ShardWriter, read_documents
from tokenmill.progress import progress

BuildSteps = Callable[[list[str], Any, Any], list[Step]]  # (names, config, on_remove) -> steps


@dataclass
class DaskConfig:
    workers: int = 1  # local Dask worker processes (1: run in this process, no Dask); --workers N
    address: str = ""  # an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (then `workers` is ignored)
    threads_per_worker: int = 1  # steps are pure Python: one thread per worker process

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads_per_worker < 1:
            raise ValueError("dask.workers and dask.threads_per_worker must be at least 1")


@contextmanager
def dask_client(config: DaskConfig, client: Any = None) -> Iterator[Any]:
    """The Dask client to run on: `client` itself, a client of `client` when it is a scheduler address,
    else one made from `config` (None when it asks for one local worker: no Dask at all)."""
    if client is not None and not isinstance(client, str):
        yield client
        return
    address = client or config.address
    if not address and config.workers <= 1:
        yield None
        return
    from dask.distributed import Client, LocalCluster

    if address:
        with Client(address) as remote:
            yield remote
        return
    with LocalCluster(n_workers=config.workers, threads_per_worker=config.threads_per_worker, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


@dataclass
class Part:
    """What one task reads: document files in order, minus the previous dedup group's duplicates."""

    files: list[str]
    decisions: Decisions | None = None  # pass two of the previous dedup group, sliced to these documents


@dataclass
class Segment:
    steps: list[str]  # per-document steps
    dedup: list[str]  # the dedup group that follows (empty for the last segment)


@dataclass
class TaskResult:
    documents_in: int = 0
    bytes_in: int = 0
    steps: list[Step] = field(default_factory=list)  # per-document steps with this task's counts
    signed: Signed | None = None
    kept_files: list[str] = field(default_factory=list)
    kept_documents: int = 0
    kept_bytes: int = 0
    removed_files: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    removed: Counter = field(default_factory=Counter)
    # characters of every text this task wrote, kept and removed (the report's length histograms)
    kept_lengths: list[int] = field(default_factory=list)
    removed_lengths: list[int] = field(default_factory=list)


def segments(steps: Sequence[Step]) -> list[Segment]:
    """Cut the pipeline at its dedup steps (consecutive dedup steps form one group)."""
    cut = [Segment([], [])]
    for step in steps:
        if isinstance(step, Dedup):
            cut[-1].dedup.append(step.name)
        else:
            if cut[-1].dedup:
                cut.append(Segment([], []))
            cut[-1].steps.append(step.name)
    return cut


def run_task(
    number: int,
    part: Part,
    segment: Segment,
    config: Any,
    build: BuildSteps,
    scrub_removed: str | None,
    workdir: str,
    shard_size: int,
    count_input: bool,
) -> TaskResult:
    """One shard through one segment (see the module docstring); runs in a worker or in this process."""
    lean_allocators()  # in a Dask worker too
    result = TaskResult()
    out = Path(workdir)
    removed = ShardWriter(out / f"removed-{number:05d}", shard_size)
    scrubber = build([scrub_removed], config, None)[0] if scrub_removed else None

    def on_remove(doc: Document, reason: str) -> None:
        doc.meta["reason"] = reason
        if scrubber is not None:
            doc = scrubber.scrub_document(doc)
        removed.write(doc)
        result.removed[reason] += 1
        result.removed_lengths.append(len(doc.text))

    docs: Iterable[Document] = (doc for file in part.files for doc in read_documents(file))
    if count_input:
        docs = counted(docs, result)
        if getattr(config, "keep_signals", False):
            docs = positioned(docs, number)
    if part.decisions is not None:
        docs = apply(part.decisions, 0, docs, on_remove)
    result.steps = build(segment.steps, config, on_remove)
    for step in result.steps:
        docs = step.run(docs)
    kept = ShardWriter(out / f"kept-{number:05d}", shard_size)
    # Dedup straight after reading: pass two re-reads the input shard itself, no copy is written.
    passthrough = segment.dedup and not segment.steps and part.decisions is None
    if segment.dedup:
        signers = build(segment.dedup, config, None)
        result.signed = sign_documents(signers, docs if passthrough else tee_to(docs, kept))  # type: ignore[arg-type]
    else:
        for doc in docs:
            kept.write(doc)
            result.kept_lengths.append(len(doc.text))
    kept.close()
    removed.close()
    for step in result.steps:
        step.on_remove = None  # the closure stays here; counts travel back
    kept_files = part.files if passthrough else sorted(kept.directory.glob("part-*.parquet"))
    result.kept_files = [str(p) for p in kept_files]
    result.kept_documents, result.kept_bytes = kept.documents, kept.bytes
    result.removed_files = [str(p) for p in sorted(removed.directory.glob("part-*.parquet"))]
    result.removed_bytes = removed.bytes
    give_back()  # this shard's documents and arrays are freed: hand the pages back before the next
    return result


def counted(docs: Iterable[Document], result: TaskResult) -> Iterator[Document]:
    for doc in docs:
        result.documents_in += 1
        result.bytes_in += doc.nbytes
        yield doc


POSITION = "position"  # prepare.keep_signals: 'task:index' of a document in the input (tokenmill select)


def positioned(docs: Iterable[Document], task: int) -> Iterator[Document]:
    """Each document with its place in the input (kept if it has one: select re-runs from a corpus)."""
    for index, doc in enumerate(docs):
        doc.meta.setdefault(POSITION, f"{task:05d}:{index:09d}")
        yield doc


def tee_to(docs: Iterable[Document], writer: ShardWriter) -> Iterator[Document]:
    """Write each document, and pass on only what signing needs (a batch of documents with the
    per-document steps' cached word lists would hold hundreds of MB)."""
    for doc in docs:
        writer.write(doc)
        yield Document(doc.id, doc.text)


def merge_counts(into: Any, other: Any) -> None:
    """Add `other`'s counts into `into`, attribute by attribute: ints, Counters, dicts of numbers, and
    (recursively) helper objects of dataprep's own classes; configs (dataclasses) are settings, not counts."""
    for name, value in vars(other).items():
        mine = getattr(into, name, None)
        if isinstance(value, bool) or mine is None or dataclasses.is_dataclass(value):
            continue
        if isinstance(value, Counter):
            mine.update(value)
        elif isinstance(value, int) and isinstance(mine, int):
            setattr(into, name, mine + value)
        elif isinstance(value, dict) and isinstance(mine, dict):
            for key, count in value.items():
                if isinstance(count, (int, float)) and not isinstance(count, bool):
                    mine[key] = mine.get(key, 0) + count
        elif type(value).__module__.startswith("dataprep.") and hasattr(value, "__dict__"):
            merge_counts(mine, value)


@dataclass
class Written:
    """What a stage wrote to one directory (the part of ShardWriter's interface the summary reads)."""

    documents: int = 0
    bytes: int = 0
    shards: int = 0
    lengths: list[int] = field(default_factory=list)  # characters of each text written


def execute(
    files: Sequence[Path],
    pipeline: Sequence[Step],
    config: Any,
    build: BuildSteps,
    out: Path,
    scrub_removed: str | None = None,
    client: Any = None,
    index: Any = None,
) -> tuple[dict[str, int], Written, Written, Counter]:
    """Run `pipeline` over `files`; write kept shards to `out` and removed ones to `out/removed`.

    `pipeline` holds the driver's step objects: their counts are set from every task's.
    `index` is a `dataprep.index.DedupIndex` (or None). Returns (input counts, kept, removed, reasons).
    """
    steps_by_name = {s.name: s for s in pipeline}
    work = out / ".work"
    parts = [Part([str(f)]) for f in files]
    kept, removed = Written(), Written()
    removed_files: list[str] = []
    reasons: Counter = Counter()
    counts = {"documents_in": 0, "bytes_in": 0}
    plan = segments(pipeline)
    for s, segment in enumerate(plan):
        workdir = work / f"segment-{s}"
        args = [(n, part, segment, config, build, scrub_removed, str(workdir), config.shard_size, s == 0)
                for n, part in enumerate(parts)]
        results = run_all(args, client, desc=f"prepare {'+'.join(segment.steps + segment.dedup) or 'read'}")
        for result in results:
            counts["documents_in"] += result.documents_in
            counts["bytes_in"] += result.bytes_in
            for step in result.steps:
                merge_counts(steps_by_name[step.name], step)
            removed_files.extend(result.removed_files)
            removed.documents += sum(result.removed.values())
            removed.bytes += result.removed_bytes
            removed.lengths.extend(result.removed_lengths)
            reasons.update(result.removed)
        if not segment.dedup:
            kept_files = [f for r in results for f in r.kept_files]
            kept.documents = sum(r.kept_documents for r in results)
            kept.bytes = sum(r.kept_bytes for r in results)
            kept.lengths = [n for r in results for n in r.kept_lengths]
            break
        group = [steps_by_name[name] for name in segment.dedup]
        signed_parts = [r.signed for r in results]
        signed = Signed.concat(signed_parts)  # type: ignore[arg-type]
        sources = [r.kept_files for r in results]
        starts = [0]
        for part in signed_parts:
            starts.append(starts[-1] + len(part.ids))  # type: ignore[union-attr]
        batch_key = index.batch_key(signed, segment.dedup) if index is not None else None
        decisions = resolve(group, signed, texts_reader(sources, starts),
                            index.rows(segment.dedup, batch_key) if index is not None else None)
        for step in group:
            step.state_bytes_per_document = round(signed.bytes_per_document(), 1)
        if index is not None:
            index.record(batch_key, signed, decisions, segment.dedup)
        parts = [Part(files, decisions.slice(starts[i], starts[i + 1])) for i, files in enumerate(sources)]
    else:  # the pipeline ends with a dedup group: one more pass drops its duplicates
        kept_files = []
    if plan[-1].dedup:
        results = run_all([(n, part, Segment([], []), config, build, scrub_removed, str(work / "final"),
                            config.shard_size, False) for n, part in enumerate(parts)], client, desc="prepare write")
        for result in results:
            removed_files.extend(result.removed_files)
            removed.documents += sum(result.removed.values())
            removed.bytes += result.removed_bytes
            removed.lengths.extend(result.removed_lengths)
            reasons.update(result.removed)
        kept_files = [f for r in results for f in r.kept_files]
        kept.documents = sum(r.kept_documents for r in results)
        kept.bytes = sum(r.kept_bytes for r in results)
        kept.lengths = [n for r in results for n in r.kept_lengths]
    kept.shards = number_shards(kept_files, out)
    removed.shards = number_shards(removed_files, out / "removed")
    shutil.rmtree(work, ignore_errors=True)
    return counts, kept, removed, reasons


def open_index(directory: str | Path | None, pipeline: Sequence[Step]) -> Any:
    """The dedup index at `directory` for the pipeline's dedup steps (None without either)."""
    dedup = [s for s in pipeline if isinstance(s, Dedup)]
    if not directory or not dedup:
        return None
    from dataprep.index import DedupIndex

    return DedupIndex(directory, dedup)


def run_all(args: list[tuple], client: Any, desc: str) -> list[TaskResult]:
    """run_task over every argument tuple, in order of the tuples whatever order they finish in."""
    if client is None:
        return [run_task(*a) for a in progress(args, desc=desc, unit="shard")]
    from dask.distributed import as_completed

    run_id = uuid.uuid4().hex[:12]
    futures = [client.submit(run_task, *a, key=f"tokenmill-prepare-{run_id}-{a[0]}", pure=False) for a in args]
    for _ in progress(as_completed(futures), total=len(futures), desc=desc, unit="shard"):
        pass
    return client.gather(futures)


def number_shards(files: list[str], directory: Path) -> int:
    """Move task outputs to `directory` as part-00000.parquet, part-00001.parquet, ... in order."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, file in enumerate(files):
        os.replace(file, directory / SHARD_PATTERN.format(number))
    return len(files)


def texts_reader(sources: list[list[str]], starts: list[int]) -> Callable[[Sequence[int]], dict[int, str]]:
    """Texts by pass-one document number, read again from the segment's survivor files."""

    def texts(numbers: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        wanted = sorted(set(numbers))
        for task, files in enumerate(sources):
            mine = [n for n in wanted if starts[task] <= n < starts[task + 1]]
            if not mine:
                continue
            targets = set(mine)
            for offset, doc in enumerate(d for f in files for d in read_documents(f)):
                if starts[task] + offset in targets:
                    found[starts[task] + offset] = doc.text
        return found

    return texts
