"""Documents between stages: Parquet shards (zstd) in, Parquet shards out; JSONL (.gz, .zst) in.

A document is `id`, `text` and free metadata (`url`, `source`, `lang`, ...). Unknown fields of
input records are kept in `meta` and written back as columns, so nothing a user added is lost.
"""

from __future__ import annotations

import gzip
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.errors import UserError

SHARD_PATTERN = "part-{:05d}.parquet"
DOCUMENT_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson")


@dataclass
class Document:
    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    # Derived views of `text` that several steps share (e.g. its words), keyed by their maker; never written.
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_record(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, **self.meta}

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str) -> "Document":
        record = dict(record)
        doc_id, text = record.pop("id", None), record.pop("text", None)
        if doc_id is None or doc_id == "":
            raise UserError(f"{where}: record has no 'id'")
        if not isinstance(text, str):
            raise UserError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
        return cls(id=str(doc_id), text=text, meta=record)

    @property
    def nbytes(self) -> int:
        return len(self.text.encode("utf-8"))


def document_files(path: str | Path) -> list[Path]:
    """The document files at `path`: the file itself, or a directory's shards in name order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: no such file or directory")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(DOCUMENT_SUFFIXES))
    if not files:
        raise UserError(f"{path}: no document files (*.parquet, *.jsonl, *.jsonl.gz, *.jsonl.zst)")
    return files


def read_documents(path: str | Path) -> Iterator[Document]:
    """Stream documents from a file or a directory of shards, in a deterministic order."""
    for file in document_files(path):
        if file.name.endswith(".parquet"):
            yield from _read_parquet(file)
        else:
            yield from _read_jsonl(file)


def _read_parquet(file: Path) -> Iterator[Document]:
    try:
        parquet = pq.ParquetFile(file)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{file}: not a readable Parquet file ({exc})") from None
    missing = {"id", "text"} - set(parquet.schema_arrow.names)
    if missing:
        raise UserError(f"{file}: missing column '{sorted(missing)[0]}'")
    row = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            yield Document.from_record(record, f"{file}: row {row}")


def _open_text(file: Path) -> io.TextIOBase:
    if file.name.endswith(".gz"):
        return gzip.open(file, "rt", encoding="utf-8")
    if file.name.endswith(".zst"):
        import zstandard

        raw = zstandard.ZstdDecompressor().stream_reader(open(file, "rb"))
        return io.TextIOWrapper(raw, encoding="utf-8")
    return open(file, encoding="utf-8")


def _read_jsonl(file: Path) -> Iterator[Document]:
    with _open_text(file) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{file}:{number}: invalid JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise UserError(f"{file}:{number}: expected a JSON object")
            yield Document.from_record(record, f"{file}:{number}")


class ShardWriter:
    """Writes documents as numbered Parquet shards of at most `shard_size` documents."""

    def __init__(self, directory: str | Path, shard_size: int = 10_000):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.buffer: list[dict[str, Any]] = []
        self.shards = 0
        self.documents = 0
        self.bytes = 0

    def write(self, doc: Document) -> None:
        self.buffer.append(doc.to_record())
        self.documents += 1
        self.bytes += doc.nbytes
        if len(self.buffer) >= self.shard_size:
            self.flush()

    def write_all(self, docs: Iterable[Document]) -> None:
        for doc in docs:
            self.write(doc)

    def flush(self) -> None:
        if not self.buffer:
            return
        write_parquet(self.buffer, self.directory / SHARD_PATTERN.format(self.shards))
        self.shards += 1
        self.buffer = []

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def write_parquet(records: list[dict[str, Any]], file: Path) -> None:
    """One zstd Parquet file with `id` and `text` first; identical records give identical bytes."""
    columns = ["id", "text"] + sorted({k for r in records for k in r} - {"id", "text"})
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in records])
    pq.write_table(table, file, compression="zstd")
