import gzip
import json
from pathlib import Path

import pytest
import zstandard

from tokenmill.documents import Document, ShardWriter, read_documents
from tokenmill.errors import UserError
from tokenmill.stage import atomic_directory

RECORDS = [
    {"id": "a", "text": "hello", "url": "http://x/a", "extra": {"k": 1}},
    {"id": "b", "text": "سلام\u200cدنیا", "lang": "fa"},
]


def _write_jsonl(path: Path, opener) -> None:
    with opener(path) as handle:
        handle.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in RECORDS).encode("utf-8"))


@pytest.mark.parametrize("suffix, opener", [
    (".jsonl", lambda p: open(p, "wb")),
    (".jsonl.gz", lambda p: gzip.open(p, "wb")),
    (".jsonl.zst", lambda p: zstandard.ZstdCompressor().stream_writer(open(p, "wb"))),
])
def test_jsonl_variants_keep_unknown_fields(tmp_path: Path, suffix, opener):
    path = tmp_path / f"docs{suffix}"
    _write_jsonl(path, opener)
    docs = list(read_documents(path))
    assert [d.id for d in docs] == ["a", "b"]
    assert docs[0].meta == {"url": "http://x/a", "extra": {"k": 1}}
    assert docs[1].text == "سلام\u200cدنیا"


def test_parquet_shards_round_trip_and_are_byte_identical(tmp_path: Path):
    docs = [Document.from_record(r, "test") for r in RECORDS * 3]
    for name in ("one", "two"):
        with ShardWriter(tmp_path / name, shard_size=4) as writer:
            writer.write_all(docs)
    assert [p.name for p in sorted((tmp_path / "one").iterdir())] == ["part-00000.parquet", "part-00001.parquet"]
    for a, b in zip(sorted((tmp_path / "one").iterdir()), sorted((tmp_path / "two").iterdir())):
        assert a.read_bytes() == b.read_bytes()
    back = list(read_documents(tmp_path / "one"))
    assert [d.to_record()["id"] for d in back] == [r["id"] for r in RECORDS * 3]
    assert back[1].meta["lang"] == "fa"


def test_bad_input_names_file_and_line(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "1", "text": "ok"}\n{"id": "2", "text": 5}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: field 'text' must be a string"):
        list(read_documents(path))
    path.write_text('{"id": "1", "text": "ok"}\nnot json\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: invalid JSON"):
        list(read_documents(path))
    with pytest.raises(UserError, match="no such file"):
        list(read_documents(tmp_path / "missing"))


def test_atomic_directory_keeps_old_output_on_failure(tmp_path: Path):
    out = tmp_path / "out"
    with atomic_directory(out) as tmp:
        (tmp / "f").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_directory(out) as tmp:
            (tmp / "f").write_text("second")
            raise RuntimeError("killed")
    assert (out / "f").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
