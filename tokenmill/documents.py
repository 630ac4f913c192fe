"""Documents between stages: Parquet shards (zstd) in, Parquet shards out; JSONL (.gz, .zst) in.

A document is `id`, `text` and free metadata (`url`, `source`, `lang`, ...). Unknown fields of
input records are kept in `meta` and written back as columns, so nothing a user added is lost.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

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
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{file}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    missing = {"id", "text"} - set(parquet.schema_arrow.names)
    if missing:
        raise UserError(f"{file}: missing column '{sorted(missing)[0]}'")
    row = 0
    batches = parquet.iter_batches(batch_size=1024)
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"{file}: damaged Parquet data after row {row} ({str(exc).splitlines()[0]})") from None
        if batch is None:
            return
        for record in batch.to_pylist():
            row += 1
            yield Document.from_record(record, f"{file}: row {row}")


def _zstd_chunks(handle: IO[bytes], file: Path) -> Iterator[bytes]:
    """Decompressed bytes of every zstd frame in `handle`; a file cut short is a UserError."""
    import zstandard

    decompressor = zstandard.ZstdDecompressor()
    stream = decompressor.decompressobj()
    pending = False  # a frame has started and not ended
    while True:
        chunk = handle.read(1 << 20)
        if not chunk:
            break
        while chunk:
            pending = True
            try:
                out = stream.decompress(chunk)
            except zstandard.ZstdError as exc:
                raise UserError(f"{file}: corrupt zstd data ({exc})") from None
            if out:
                yield out
            if stream.eof:  # a frame ended: what follows (if anything) is the next frame
                pending = False
                chunk = stream.unused_data
                stream = decompressor.decompressobj()
            else:
                chunk = b""
    if pending:
        raise UserError(f"{file}: truncated zstd file (the last frame is incomplete)")


def _lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def _raw_lines(file: Path) -> Iterator[bytes]:
    """The lines of a JSONL file as bytes (.gz and .zst decompressed); damage is a one-line UserError."""
    if file.name.endswith(".zst"):
        with open(file, "rb") as handle:
            yield from _lines(_zstd_chunks(handle, file))
        return
    opener = gzip.open if file.name.endswith(".gz") else open
    try:
        with opener(file, "rb") as handle:
            yield from handle
    except EOFError:
        raise UserError(f"{file}: truncated gzip file (it ends before the end of the compressed stream)") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise UserError(f"{file}: not a valid gzip file ({exc})") from None


JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "list", dict: "object"}


def _read_jsonl(file: Path) -> Iterator[Document]:
    field_types: dict[str, tuple[str, int]] = {}  # field → (JSON type, first line with it)
    for number, raw in enumerate(_raw_lines(file), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{file}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{file}:{number}: invalid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{file}:{number}: expected a JSON object")
        doc = Document.from_record(record, f"{file}:{number}")
        for key, value in record.items():
            if value is None or key == "id":  # ids are strings on the way out, whatever they were
                continue
            kind = JSON_TYPES.get(type(value), type(value).__name__)
            seen = field_types.setdefault(key, (kind, number))
            if seen[0] != kind:
                raise UserError(
                    f"{file}:{number}: field '{key}' is a {kind} here but a {seen[0]} on line {seen[1]}"
                )
        yield doc


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
        """Write the last shard and give all shards of this directory one schema (`unify_shards`)."""
        self.flush()
        unify_shards(self.directory)

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()


def unify_shards(directory: str | Path) -> pa.Schema | None:
    """Give every part-*.parquet shard in `directory` one schema: the union of their columns (`id`,
    `text`, then the rest by name; all nullable), each column's type promoted across shards (a column
    that is null in one shard and a string in another is a string). Shards already in that schema are
    left untouched. Types that cannot be reconciled (a string in one shard, a number in another) are a
    one-line UserError naming the column and both shards. Returns the schema (None: no shards)."""
    directory = Path(directory)
    files = sorted(directory.glob("part-*.parquet"))
    if not files:
        return None
    schemas = [pq.read_schema(f) for f in files]
    first_seen: dict[str, tuple[pa.DataType, Path]] = {}
    fields: dict[str, pa.Field] = {}
    for file, schema in zip(files, schemas):
        for field in schema:
            if pa.types.is_null(field.type):
                fields.setdefault(field.name, field)
                continue
            known = fields.get(field.name)
            if known is None or pa.types.is_null(known.type):
                fields[field.name] = field.with_nullable(True)
                first_seen[field.name] = (field.type, file)
                continue
            try:
                merged = pa.unify_schemas([pa.schema([known]), pa.schema([field])], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                type0, file0 = first_seen[field.name]
                raise UserError(
                    f"{directory}: column '{field.name}' is {type0} in {file0.name} but {field.type} in {file.name}"
                ) from None
            fields[field.name] = merged.field(field.name).with_nullable(True)
    names = ["id", "text"] + sorted(set(fields) - {"id", "text"})
    unified = pa.schema([fields[name] for name in names if name in fields])
    for file, schema in zip(files, schemas):
        if schema.equals(unified):
            continue
        table = pq.read_table(file)
        columns = [
            table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in unified
        ]
        tmp = file.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_arrays(columns, schema=unified), tmp, compression="zstd")
        tmp.replace(file)
    return unified


def write_parquet(records: list[dict[str, Any]], file: Path) -> None:
    """One zstd Parquet file with `id` and `text` first; identical records give identical bytes."""
    columns = ["id", "text"] + sorted({k for r in records for k in r} - {"id", "text"})
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in records])
    pq.write_table(table, file, compression="zstd")
