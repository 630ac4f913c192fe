"""Documents between stages: Parquet shards (zstd) in, Parquet shards out; JSONL (.gz, .zst) in.

A document is `id`, `text` and free metadata (`url`, `source`, `lang`, ...). Unknown fields of
input records are kept in `meta` and written back as columns, so nothing a user added is lost.

Paths may be URLs (`s3://bucket/prefix`, any `proto://` fsspec knows; s3:// needs the `s3` extra):
document files are then listed, read and written through fsspec, and named by their URL.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Union

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tokenmill.errors import UserError
from tokenmill.locations import is_url, join, url_fs
from tokenmill.stage import exclusive_temp_file

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
        text = self.text
        return len(text) if text.isascii() else len(text.encode("utf-8"))  # isascii: a flag, no scan


READ_BUFFER = 1 << 20
DocumentFile = Union[Path, str]  # a local path, or the URL of a remote file


def file_name(file: DocumentFile) -> str:
    return file.name if isinstance(file, Path) else file.rstrip("/").rsplit("/", 1)[-1]


def open_binary(file: DocumentFile, mode: str = "rb") -> IO[bytes]:
    """A local file, or a remote one through fsspec."""
    if not is_url(file):
        # a 1 MiB buffer: a JSONL line (a whole page) is often longer than the default 8 KiB, and
        # iterating lines through the small buffer took 3-5x as long
        return open(file, mode, buffering=READ_BUFFER if "r" in mode else -1)
    fs, path = url_fs(file)
    return fs.open(path, mode)


def document_files(path: str | Path) -> list[DocumentFile]:
    """The document files at `path`: the file itself, or a directory's shards in name order."""
    if is_url(path):
        return _remote_document_files(path)
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise UserError(f"{path}: no such file or directory")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(DOCUMENT_SUFFIXES))
    if not files:
        raise UserError(f"{path}: no document files (*.parquet, *.jsonl, *.jsonl.gz, *.jsonl.zst)")
    return files


def _remote_document_files(url: str) -> list[str]:
    fs, root = url_fs(url)
    root = root.rstrip("/")
    try:
        fs.invalidate_cache(root)  # another process (or this one, through another call) may have written there
        if fs.isfile(root):
            return [url]
        listing = fs.ls(root, detail=True) if fs.isdir(root) else None
    except OSError as exc:
        raise UserError(f"{url}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if listing is None:
        raise UserError(f"{url}: no such file or directory")
    base = url.rstrip("/")
    files = sorted(f"{base}/{entry['name'].rstrip('/').rsplit('/', 1)[-1]}" for entry in listing
                   if entry.get("type") == "file" and entry["name"].endswith(DOCUMENT_SUFFIXES))
    if not files:
        raise UserError(f"{url}: no document files (*.parquet, *.jsonl, *.jsonl.gz, *.jsonl.zst)")
    return files


def read_documents(path: str | Path) -> Iterator[Document]:
    """Stream documents from a file or a directory of shards, in a deterministic order."""
    for file in document_files(path):
        if file_name(file).endswith(".parquet"):
            yield from _read_parquet(file)
        else:
            yield from _read_jsonl(file)


def read_texts(file: DocumentFile, rows: Iterable[int]) -> dict[int, str]:
    """The texts of the documents at positions `rows` of one file (counted as `read_documents` yields
    them): of Parquet only the text column is read, of JSONL only the wanted lines are parsed."""
    wanted = set(rows)
    if file_name(file).endswith(".parquet"):
        column = read_table(file, ["text"]).column("text")
        present = sorted(r for r in wanted if 0 <= r < len(column))
        return dict(zip(present, column.take(pa.array(present, type=pa.int64())).to_pylist()))
    found: dict[int, str] = {}
    row = 0
    for number, raw in enumerate(_raw_lines(file), start=1):
        if not wanted:
            break
        if row not in wanted:
            row += not _blank(raw)
            continue
        record = _fast_record(raw) or _record(raw, file, number)
        if record is None:
            continue
        found[row] = Document.from_record(record, f"{file}:{number}").text
        wanted.discard(row)
        row += 1
    return found


def count_documents(file: DocumentFile) -> int:
    """How many documents `read_documents` yields from one file (Parquet: from its footer)."""
    if file_name(file).endswith(".parquet"):
        return pq.ParquetFile(file).metadata.num_rows if not is_url(file) else read_table(file, ["id"]).num_rows
    return sum(not _blank(raw) for raw in _raw_lines(file))


def _blank(raw: bytes) -> bool:
    """Whether `_record` takes this line for a blank one (whitespace, Unicode's included)."""
    stripped = raw.strip()
    return not stripped or (stripped[:1] != b"{" and not raw.decode("utf-8", "replace").strip())


def _read_parquet(file: DocumentFile) -> Iterator[Document]:
    if is_url(file):
        with open_binary(file) as handle:
            yield from _parquet_documents(handle, file)
    else:
        yield from _parquet_documents(file, file)


def _parquet_documents(source: Path | IO[bytes], file: DocumentFile) -> Iterator[Document]:
    try:
        parquet = pq.ParquetFile(source)
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


def _zstd_chunks(handle: IO[bytes], file: DocumentFile) -> Iterator[bytes]:
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


def _raw_lines(file: DocumentFile) -> Iterator[bytes]:
    """The lines of a JSONL file as bytes (.gz and .zst decompressed); damage is a one-line UserError."""
    name = file_name(file)
    with open_binary(file) as raw:
        if name.endswith(".zst"):
            yield from _lines(_zstd_chunks(raw, file))
            return
        handle = gzip.GzipFile(fileobj=raw, mode="rb") if name.endswith(".gz") else raw
        try:
            yield from handle
        except EOFError:
            raise UserError(f"{file}: truncated gzip file (it ends before the end of the compressed stream)") from None
        except (gzip.BadGzipFile, zlib.error) as exc:
            raise UserError(f"{file}: not a valid gzip file ({exc})") from None


JSON_TYPES = {str: "string", int: "number", float: "number", bool: "boolean", list: "list", dict: "object"}


def _read_jsonl(file: DocumentFile) -> Iterator[Document]:
    field_types: dict[str, tuple[str, int]] = {}  # field → (JSON type, first line with it)
    for number, raw in enumerate(_raw_lines(file), start=1):
        record = _fast_record(raw)
        if record is None:
            record = _record(raw, file, number)
            if record is None:
                continue
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


def _record(raw: bytes, file: DocumentFile, number: int) -> dict[str, Any] | None:
    """Line `number` of `file` as a JSON object (None: a blank line), through the json module; what is
    wrong with the line is a one-line UserError naming the file and the line."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}:{number}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
    if not line.strip():
        return None
    return json_object(line, f"{file}:{number}")


def json_object(line: str, where: str) -> dict[str, Any]:
    """One JSONL line as a JSON object; anything else is a one-line UserError naming `where`."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return record


try:
    from orjson import loads as _orjson_loads
except ImportError:  # pragma: no cover - orjson is a dependency; json alone gives the same records
    _orjson_loads = None

_FLOAT_FROM_BIG_INT = float(1 << 63)


def _fast_record(raw: bytes) -> dict[str, Any] | None:
    """The JSON object on this line through orjson (~2x json's speed, UTF-8 checked as it parses), or
    None where `_record` must decide: anything orjson rejects (not UTF-8, invalid JSON, a blank line,
    NaN/Infinity, lone surrogates, numbers beyond a double: json accepts some of these), a line that is
    not an object, and floats orjson may have made of integers beyond 64 bits (json keeps those ints)."""
    if _orjson_loads is None:
        return None
    try:
        record = _orjson_loads(raw)
    except ValueError:
        return None
    if type(record) is not dict:
        return None
    for value in record.values():
        kind = type(value)
        if (kind is float or kind is dict or kind is list) and not _exact(value):
            return None
    return record


def _exact(value: Any) -> bool:
    """No float in `value` that could have been an integer literal beyond 64 bits."""
    kind = type(value)
    if kind is float:
        return not (value.is_integer() and abs(value) >= _FLOAT_FROM_BIG_INT)
    if kind is dict:
        return all(map(_exact, value.values()))
    if kind is list:
        return all(map(_exact, value))
    return True


class ShardWriter:
    """Writes documents as numbered Parquet shards of at most `shard_size` documents."""

    def __init__(self, directory: str | Path, shard_size: int = 10_000):
        self.directory = directory if is_url(directory) else Path(directory)  # a URL: written through fsspec
        if is_url(directory):
            fs, root = url_fs(directory)
            fs.makedirs(root, exist_ok=True)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        # the shard being filled, column by column (a document's `cache` is not kept)
        self._ids: list[Any] = []
        self._texts: list[Any] = []
        self._metas: list[dict[str, Any]] = []
        self._written_bytes = 0
        self.shards = 0
        self.documents = 0

    @property
    def bytes(self) -> int:
        """UTF-8 bytes of the texts written so far."""
        return self._written_bytes + sum(len(text.encode("utf-8")) for text in self._texts)

    def write(self, doc: Document) -> None:
        self._ids.append(doc.id)
        self._texts.append(doc.text)
        self._metas.append(dict(doc.meta))
        self.documents += 1
        if len(self._ids) >= self.shard_size:
            self.flush()

    def write_all(self, docs: Iterable[Document]) -> None:
        for doc in docs:
            self.write(doc)

    def flush(self) -> None:
        if not self._ids:
            return
        table, text_bytes = _documents_table(self._ids, self._texts, self._metas)
        _write_table(table, join(self.directory, SHARD_PATTERN.format(self.shards)))
        self._written_bytes += text_bytes
        self.shards += 1
        self._ids, self._texts, self._metas = [], [], []

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
    files = _shards(directory)
    if not files:
        return None
    schemas = [_read_schema(f) for f in files]
    first_seen: dict[str, tuple[pa.DataType, Path]] = {}
    fields: dict[str, pa.Field] = {}
    for file, schema in zip(files, schemas):
        for column in schema:
            if pa.types.is_null(column.type):
                fields.setdefault(column.name, column)
                continue
            known = fields.get(column.name)
            if known is None or pa.types.is_null(known.type):
                fields[column.name] = column.with_nullable(True)
                first_seen[column.name] = (column.type, file)
                continue
            try:
                merged = pa.unify_schemas([pa.schema([known]), pa.schema([column])], promote_options="permissive")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
                type0, file0 = first_seen[column.name]
                raise UserError(
                    f"{directory}: column '{column.name}' is {type0} in {file_name(file0)} but {column.type} in "
                    f"{file_name(file)}"
                ) from None
            fields[column.name] = merged.field(column.name).with_nullable(True)
    names = ["id", "text"] + sorted(set(fields) - {"id", "text"})
    unified = pa.schema([fields[name] for name in names if name in fields])
    for file, schema in zip(files, schemas):
        if schema.equals(unified):
            continue
        table = read_table(file)
        columns = [
            table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
            for f in unified
        ]
        unified_table = pa.Table.from_arrays(columns, schema=unified)
        if is_url(file):  # an object store replaces an object in one PUT: readers see the old or the new
            _write_table(unified_table, file)
        else:
            fd, tmp = exclusive_temp_file(Path(file))
            try:
                with os.fdopen(fd, "wb") as handle:
                    pq.write_table(unified_table, handle, compression="zstd")
                tmp.replace(file)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
    return unified


def _shards(directory: str | Path) -> list[DocumentFile]:
    if not is_url(directory):
        return sorted(Path(directory).glob("part-*.parquet"))
    fs, root = url_fs(directory)
    fs.invalidate_cache(root.rstrip("/"))
    base = directory.rstrip("/")
    return sorted(f"{base}/{p.rsplit('/', 1)[-1]}" for p in fs.glob(root.rstrip("/") + "/part-*.parquet"))


def _read_schema(file: DocumentFile) -> pa.Schema:
    with open_binary(file) as handle:
        return pq.read_schema(handle)


def read_table(file: DocumentFile, columns: list[str] | None = None) -> pa.Table:
    """A Parquet file's table (or these columns of it). pq.ParquetFile, not pq.read_table: that goes
    through pyarrow.dataset, whose import imports pandas (~0.1 s and ~40 MB of a process)."""
    with open_binary(file) as handle:
        return pq.ParquetFile(handle).read(columns=columns)


def read_batches(file: DocumentFile, columns: list[str], batch_size: int = 64) -> Iterator[pa.RecordBatch]:
    """These columns of a Parquet file, `batch_size` rows at a time (a few rows of a shard without
    decoding all of its texts at once)."""
    with open_binary(file) as handle:
        yield from pq.ParquetFile(handle).iter_batches(batch_size=batch_size, columns=columns, use_threads=False)


def _write_table(table: pa.Table, file: DocumentFile) -> None:
    """`table` as one zstd Parquet file: a local path, or a remote file through fsspec."""
    if not is_url(file):
        pq.write_table(table, file, compression="zstd")
        return
    with open_binary(file, "wb") as handle:
        pq.write_table(table, handle, compression="zstd")


def write_parquet(records: list[dict[str, Any]], file: DocumentFile) -> None:
    """One zstd Parquet file with `id` and `text` first; identical records give identical bytes."""
    metas = [{k: v for k, v in r.items() if k not in ("id", "text")} for r in records]
    table, _ = _documents_table([r.get("id") for r in records], [r.get("text") for r in records], metas)
    _write_table(table, file)


def _documents_table(ids: list[Any], texts: list[Any], metas: list[dict[str, Any]]) -> tuple[pa.Table, int]:
    """The table write_parquet writes for these documents' records (`id`, `text`, the meta fields by
    name), built column by column; and the UTF-8 bytes of the texts."""
    keys: set[str] = set()
    for meta in metas:
        keys.update(meta)
    own_texts = texts
    if "id" in keys or "text" in keys:  # a meta field shadows a document's own: as its record has it
        ids = [m.get("id", i) for i, m in zip(ids, metas)]
        texts = [m.get("text", t) for t, m in zip(texts, metas)]
        metas = [{k: v for k, v in m.items() if k not in ("id", "text")} for m in metas]
        keys -= {"id", "text"}
    columns = ["id", "text"] + sorted(keys)
    text = _column(texts)
    arrays = [_column(ids), text] + [_column([m.get(k) for m in metas]) for k in columns[2:]]
    if texts is own_texts and pa.types.is_string(text.type) and text.null_count == 0:
        offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)
        text_bytes = int(offsets[text.offset + len(text)] - offsets[text.offset])
    else:
        text_bytes = sum(len(t.encode("utf-8")) for t in own_texts if isinstance(t, str))
    return pa.Table.from_arrays(arrays, names=columns), text_bytes


_MAX_STRING_BYTES = (1 << 31) - 1  # pa.string()'s int32 offsets


def _column(values: list[Any]) -> pa.Array:
    """pa.array(values) for the plain column types (str, int, float, bool, all null), built from
    buffers; anything else through pa.array itself (which imports pandas: ~0.1 s and ~40 MB)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    count = len(values)
    if not kinds:
        return pa.nulls(count)
    if len(kinds) > 1:
        return pa.array(values)
    kind = kinds.pop()
    valid = None
    nulls = 0
    if None in values:  # `in` compares by identity first: no __eq__ of a value runs for None
        mask = np.fromiter((v is not None for v in values), dtype=bool, count=count)
        nulls = count - int(mask.sum())
        valid = pa.py_buffer(np.packbits(mask, bitorder="little"))
    if kind is str:
        data = bytearray()  # the column's UTF-8, one text at a time (no list of all texts' bytes)
        ends = []
        for v in values:
            if v is not None:
                data += v.encode("utf-8")
            ends.append(len(data))
        if len(data) > _MAX_STRING_BYTES:
            return pa.array(values)
        offsets = np.zeros(count + 1, dtype=np.int32)
        offsets[1:] = ends
        return pa.Array.from_buffers(pa.string(), count, [valid, pa.py_buffer(offsets), pa.py_buffer(data)],
                                     null_count=nulls)
    if kind is int:
        try:
            data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=count)
        except OverflowError:
            return pa.array(values)
        return pa.Array.from_buffers(pa.int64(), count, [valid, pa.py_buffer(data)], null_count=nulls)
    if kind is float:
        data = np.fromiter((0.0 if v is None else v for v in values), dtype=np.float64, count=count)
        return pa.Array.from_buffers(pa.float64(), count, [valid, pa.py_buffer(data)], null_count=nulls)
    if kind is bool:
        bits = np.packbits(np.fromiter((v is True for v in values), dtype=bool, count=count), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), count, [valid, pa.py_buffer(bits)], null_count=nulls)
    return pa.array(values)
