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
import json
import os
import shutil
import uuid
from itertools import repeat
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from dataprep.dedup import Dedup, ShardDecisions, apply_listed
from dataprep.dedup_disk import ShardState, kept_rows, resolve_on_disk, state_bytes_per_document, write_state
from dataprep.memory import give_back, lean_allocators
from dataprep.step import Step
from tokenmill.documents import (SHARD_PATTERN, Document, ShardWriter, count_documents, read_documents,
                                 read_texts)
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
    decisions: ShardDecisions | None = None  # pass two of the previous dedup group for these documents


@dataclass
class Segment:
    steps: list[str]  # per-document steps
    dedup: list[str]  # the dedup group that follows (empty for the last segment)


@dataclass
class TaskResult:
    documents_in: int = 0
    bytes_in: int = 0
    steps: list[tuple[str, dict]] = field(default_factory=list)  # per-document steps: (name, counts_of(step))
    state: ShardState | None = None  # pass one of the next dedup group (dataprep/dedup_disk.py)
    kept_files: list[str] = field(default_factory=list)
    kept_documents: int = 0
    kept_bytes: int = 0
    removed_files: list[str] = field(default_factory=list)
    removed_bytes: int = 0
    removed: Counter = field(default_factory=Counter)
    # characters of every text this task wrote, kept and removed (the report's length histograms)
    kept_lengths: Counter = field(default_factory=Counter)  # length -> texts
    removed_lengths: Counter = field(default_factory=Counter)


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
    for leftover in ("removed", "kept", "state"):  # what a killed run of this task left
        shutil.rmtree(out / f"{leftover}-{number:05d}", ignore_errors=True)
    removed = ShardWriter(out / f"removed-{number:05d}", shard_size)
    scrubber = build([scrub_removed], config, None)[0] if scrub_removed else None
    # documents removed before the scrubbing step ran are scrubbed here; the others already were (and
    # scrubbing is not idempotent: text next to a placeholder can look like a number of its own)
    unscrubbed = set(config.steps[: config.steps.index(scrub_removed)]) if scrub_removed in config.steps else set()

    def on_remove(doc: Document, reason: str) -> None:
        doc.meta["reason"] = reason
        if scrubber is not None and reason.split(":")[0] in unscrubbed:
            doc = scrubber.scrub_document(doc)
        removed.write(doc)
        result.removed[reason] += 1
        result.removed_lengths[len(doc.text)] += 1

    docs: Iterable[Document] = (doc for file in part.files for doc in read_documents(file))
    if count_input:
        docs = counted(docs, result)
        if getattr(config, "keep_signals", False):
            docs = positioned(docs, number)
    if part.decisions is not None:
        docs = apply_listed(part.decisions, docs, on_remove)
    steps = build(segment.steps, config, on_remove)
    for step in steps:
        docs = step.run(docs)
    kept = ShardWriter(out / f"kept-{number:05d}", shard_size)
    # Dedup straight after reading: pass two re-reads the input shard itself, no copy is written.
    passthrough = segment.dedup and not segment.steps and part.decisions is None
    if segment.dedup:
        signers = build(segment.dedup, config, None)
        result.state = write_state(signers, docs if passthrough else tee_to(docs, kept), out / f"state-{number:05d}")
    else:
        for doc in docs:
            kept.write(doc)
            result.kept_lengths[len(doc.text)] += 1
    kept.close()
    removed.close()
    result.steps = [(step.name, counts_of(step)) for step in steps]
    kept_files = part.files if passthrough else sorted(kept.directory.glob("part-*.parquet"))
    result.kept_files = [str(p) for p in kept_files]
    result.kept_documents, result.kept_bytes = kept.documents, kept.bytes
    result.removed_files = [str(p) for p in sorted(removed.directory.glob("part-*.parquet"))]
    result.removed_bytes = removed.bytes
    save_result(result, marker(workdir, number))  # last: the task is done, a rerun reads this instead
    give_back()  # this shard's documents and arrays are freed: hand the pages back before the next
    return result


def marker(workdir: str | Path, number: int) -> Path:
    """The completion marker of task `number`: its result, written once all its files are."""
    return Path(workdir) / f"done-{number:05d}.json"


def save_result(result: TaskResult, path: Path) -> None:
    record = dataclasses.asdict(result)
    for name in ("removed", "kept_lengths", "removed_lengths"):
        record[name] = sorted(getattr(result, name).items())
    write_atomically(path, json.dumps(record, separators=(",", ":")))


def load_result(path: Path) -> TaskResult:
    record = json.loads(path.read_text(encoding="utf-8"))
    for name in ("removed", "kept_lengths", "removed_lengths"):
        record[name] = Counter(dict(record[name]))
    record["steps"] = [(name, counts) for name, counts in record["steps"]]
    record["state"] = ShardState(**record["state"]) if record["state"] else None
    return TaskResult(**record)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


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


def counts_of(step: Any) -> dict:
    """A step's figures as JSON-ready data, attribute by attribute: ints, Counters, dicts of numbers, and
    (recursively) helper objects of dataprep's own classes; configs (dataclasses) are settings, skipped."""
    found: dict[str, Any] = {}
    for name, value in vars(step).items():
        if isinstance(value, bool) or dataclasses.is_dataclass(value):
            continue
        if isinstance(value, Counter):
            found[name] = ["counter", [[k, v] for k, v in value.items()]]
        elif isinstance(value, int):
            found[name] = ["int", value]
        elif isinstance(value, dict):
            numbers = [[k, v] for k, v in value.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
            found[name] = ["dict", numbers]
        elif type(value).__module__.startswith("dataprep.") and hasattr(value, "__dict__"):
            found[name] = ["object", counts_of(value)]
    return found


def merge_counts(into: Any, counts: dict, base: dict) -> None:
    """Add a task's `counts` (`counts_of` its step) into the driver's step `into`, less `base` (`counts_of` a
    fresh step): an int that is a setting (the same in every task) is then not multiplied by the tasks."""
    for name, (kind, value) in counts.items():
        mine = getattr(into, name, None)
        before = base.get(name, [kind, None])[1]
        if mine is None:
            continue
        if kind == "int":
            setattr(into, name, mine + value - (before or 0))
        elif kind in ("counter", "dict"):
            fresh = {as_key(k): v for k, v in before or []}
            for key, count in value:
                key = as_key(key)
                mine[key] = mine.get(key, 0) + count - fresh.get(key, 0)
        elif kind == "object":
            merge_counts(mine, value, before or {})


def as_key(key: Any) -> Any:
    return tuple(as_key(k) for k in key) if isinstance(key, list) else key  # JSON made tuples lists


class Lengths:
    """The characters of every text written, as what the report iterates (every length, once a text)
    but kept as counts per length: memory grows with the distinct lengths, not with the documents."""

    def __init__(self, counts: Counter | None = None):
        self.counts = counts if counts is not None else Counter()

    def __iter__(self) -> Iterator[int]:
        for length, n in sorted(self.counts.items()):
            yield from repeat(length, n)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def __add__(self, other: "Lengths") -> "Lengths":
        return Lengths(self.counts + other.counts)


@dataclass
class Written:
    """What a stage wrote to one directory (the part of ShardWriter's interface the summary reads)."""

    documents: int = 0
    bytes: int = 0
    shards: int = 0
    lengths: "Lengths" = field(default_factory=lambda: Lengths())  # characters of each text written


def execute(
    files: Sequence[Path],
    pipeline: Sequence[Step],
    config: Any,
    build: BuildSteps,
    out: Path,
    scrub_removed: str | None = None,
    client: Any = None,
    index: Any = None,
    work: Path | None = None,
) -> tuple[dict[str, int], Written, Written, Counter]:
    """Run `pipeline` over `files`; write kept shards to `out` and removed ones to `out/removed`.

    `pipeline` holds the driver's step objects: their counts are set from every task's.
    `index` is a `dataprep.index.DedupIndex` (or None). `work`: where tasks write (default `out/.work`);
    a task whose completion marker is there is not run again (resume: see `work_directory`), and
    what they wrote is linked into `out`, so that `work` stays whole until the caller removes it.
    Returns (input counts, kept, removed, reasons).
    """
    work = work or out / ".work"
    tally = Tally(pipeline)
    parts = [Part([str(f)]) for f in files]
    plan = segments(pipeline)
    for s, segment in enumerate(plan):
        workdir = work / f"segment-{s}"
        args = [(n, part, segment, config, build, scrub_removed, str(workdir), config.shard_size, s == 0)
                for n, part in enumerate(parts)]
        results = run_all(args, client, desc=f"prepare {'+'.join(segment.steps + segment.dedup) or 'read'}")
        tally.add(results)
        if not segment.dedup:
            break
        decisions = dedup_group([tally.steps[name] for name in segment.dedup], results, index, client, workdir)
        parts = [Part(r.kept_files, decisions[i]) for i, r in enumerate(results)]
    else:  # the pipeline ends with a dedup group: one more pass drops its duplicates
        results = run_all([(n, part, Segment([], []), config, build, scrub_removed, str(work / "final"),
                            config.shard_size, False) for n, part in enumerate(parts)], client, desc="prepare write")
        tally.add(results, counts=False)
    return tally.written(results, out)


class Tally:
    """What every task did: input counts, the driver's step counts, kept and removed documents."""

    def __init__(self, pipeline: Sequence[Step]):
        self.steps = {s.name: s for s in pipeline}
        self.fresh = {s.name: counts_of(s) for s in pipeline}  # what a task's counts start from
        self.counts = {"documents_in": 0, "bytes_in": 0}
        self.removed = Written()
        self.removed_files: list[str] = []
        self.reasons: Counter = Counter()

    def add(self, results: Sequence[TaskResult], counts: bool = True) -> None:
        for result in results:
            self.counts["documents_in"] += result.documents_in
            self.counts["bytes_in"] += result.bytes_in
            for name, step_counts in result.steps if counts else []:
                merge_counts(self.steps[name], step_counts, self.fresh[name])
            self.removed_files.extend(result.removed_files)
            self.removed.documents += sum(result.removed.values())
            self.removed.bytes += result.removed_bytes
            self.removed.lengths.counts.update(result.removed_lengths)
            self.reasons.update(result.removed)

    def written(self, last: Sequence[TaskResult], out: Path) -> tuple[dict[str, int], Written, Written, Counter]:
        """Number the last segment's kept shards and every removed shard into `out` (linked)."""
        kept = Written(sum(r.kept_documents for r in last), sum(r.kept_bytes for r in last))
        for r in last:
            kept.lengths.counts.update(r.kept_lengths)
        kept.shards = number_shards([f for r in last for f in r.kept_files], out)
        self.removed.shards = number_shards(self.removed_files, out / "removed")
        return self.counts, kept, self.removed, self.reasons


def dedup_group(group: list[Dedup], results: Sequence[TaskResult], index: Any, client: Any,
                workdir: Path) -> list[ShardDecisions]:
    """Cluster what pass one wrote (dataprep/dedup_disk.py), against `index` and then recorded in it."""
    names = [step.name for step in group]
    states = [r.state for r in results]  # type: ignore[misc]
    starts = [0]
    for state in states:
        starts.append(starts[-1] + state.documents)  # type: ignore[union-attr]
    batch_key = index.batch_key(states, names) if index is not None else None
    index_states = index.states(group, batch_key, workdir / "index") if index is not None else []
    texts = texts_reader([r.kept_files for r in results], starts)
    decisions = resolve_on_disk(group, states + index_states, texts,  # type: ignore[operator]
                                lambda fn, args, desc: run_calls(fn, args, client, desc), workdir / "dedup")
    for step in group:
        step.state_bytes_per_document = state_bytes_per_document(states)  # type: ignore[arg-type]
    if index is not None:
        index.record_kept(batch_key, kept_rows(states, decisions), names)  # type: ignore[arg-type]
    return decisions


def open_index(directory: str | Path | None, pipeline: Sequence[Step]) -> Any:
    """The dedup index at `directory` for the pipeline's dedup steps (None without either)."""
    dedup = [s for s in pipeline if isinstance(s, Dedup)]
    if not directory or not dedup:
        return None
    from dataprep.index import DedupIndex

    return DedupIndex(directory, dedup)


def run_all(args: list[tuple], client: Any, desc: str) -> list[TaskResult]:
    """run_task over every argument tuple, in order of the tuples whatever order they finish in; a task
    whose completion marker is there is read back instead of run again."""
    done = {n: load_result(marker(a[6], a[0])) for n, a in enumerate(args) if marker(a[6], a[0]).exists()}
    todo = [a for n, a in enumerate(args) if n not in done]
    ran = iter(run_calls(run_task, todo, client, desc))
    return [done[n] if n in done else next(ran) for n in range(len(args))]


def run_calls(fn: Callable, args: list[tuple], client: Any, desc: str) -> list:
    """`fn(*a)` for every argument tuple `a`, here or on Dask; results in the order of the tuples."""
    if client is None:
        return [fn(*a) for a in progress(args, desc=desc, unit="task")]
    from dask.distributed import as_completed

    run_id = uuid.uuid4().hex[:12]
    futures = [client.submit(fn, *a, key=f"tokenmill-{fn.__name__}-{run_id}-{n}", pure=False)
               for n, a in enumerate(args)]
    for _ in progress(as_completed(futures), total=len(futures), desc=desc, unit="task"):
        pass
    return client.gather(futures)


def number_shards(files: list[str], directory: Path) -> int:
    """Link task outputs into `directory` as part-00000.parquet, part-00001.parquet, ... in order (copied
    where links cannot be made; the task's files stay, for a rerun after a kill)."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, file in enumerate(files):
        target = directory / SHARD_PATTERN.format(number)
        target.unlink(missing_ok=True)
        try:
            os.link(file, target)
        except OSError:
            shutil.copyfile(file, target)
    return len(files)


def texts_reader(sources: list[list[str]], starts: list[int]) -> Callable[[Sequence[int]], dict[int, str]]:
    """Texts by pass-one document number, read again from the segment's survivor files (only the files
    that hold a wanted number; of those, only the text column of Parquet, only the wanted lines of JSONL)."""

    def texts(numbers: Sequence[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        wanted = sorted(set(numbers))
        for task, files in enumerate(sources):
            targets = {n - starts[task] for n in wanted if starts[task] <= n < starts[task + 1]}
            offset = 0
            for i, file in enumerate(files):
                if not targets:
                    break
                last = i == len(files) - 1  # the rest of the targets are in it: no need to count its rows
                size = None if last else count_documents(file)
                rows = [r for r in targets if last or r < offset + size]
                got = read_texts(file, [r - offset for r in rows])
                found.update((starts[task] + offset + r, text) for r, text in got.items())
                targets.difference_update(rows)
                offset += size or 0
        return found

    return texts
