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


def test_all_shards_of_an_output_share_one_schema(tmp_path: Path):
    import pyarrow.parquet as pq

    writer = ShardWriter(tmp_path / "out", shard_size=2)
    writer.write_all([
        Document("1", "a", {"lang": "en"}), Document("2", "b", {"lang": None}),  # shard 0: lang only
        Document("3", "c", {"score": 1}), Document("4", "d", {"score": 2.5, "tags": ["x"]}),  # shard 1
        Document("5", "e", {}),  # shard 2: no metadata at all
    ])
    writer.close()
    schemas = [pq.read_schema(p) for p in sorted((tmp_path / "out").glob("part-*.parquet"))]
    assert len(schemas) == 3 and all(s.equals(schemas[0]) for s in schemas)
    assert schemas[0].names == ["id", "text", "lang", "score", "tags"]
    assert str(schemas[0].field("lang").type) == "string" and str(schemas[0].field("score").type) == "double"
    assert all(field.nullable for field in schemas[0])
    rows = {d.id: d.meta for d in read_documents(tmp_path / "out")}
    assert rows["5"] == {"lang": None, "score": None, "tags": None} and rows["3"]["score"] == 1.0


def test_shards_whose_column_types_disagree_are_a_one_line_error(tmp_path: Path):
    from tokenmill.documents import unify_shards, write_parquet

    write_parquet([{"id": "1", "text": "a", "year": 2024}], tmp_path / "part-00000.parquet")
    write_parquet([{"id": "2", "text": "b", "year": "2024"}], tmp_path / "part-00001.parquet")
    with pytest.raises(UserError, match=r"column 'year' is int64 in part-00000.parquet but string in part-00001"):
        unify_shards(tmp_path)


def test_jsonl_field_changing_type_names_file_line_and_field(tmp_path: Path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": 1, "text": "a", "year": 2024}\n{"id": 2, "text": "b", "year": null}\n'
                    '{"id": 3, "text": "c", "year": "2024"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"docs.jsonl:3: field 'year' is a string here but a number on line 1"):
        list(read_documents(path))


def test_non_utf8_jsonl_names_file_and_line(tmp_path: Path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes('{"id": 1, "text": "ok"}\n{"id": 2, "text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match=r"latin1.jsonl:2: not UTF-8 text \(byte 0xe9"):
        list(read_documents(path))


@pytest.mark.parametrize("suffix, compress", [
    (".jsonl.gz", gzip.compress),
    (".jsonl.zst", lambda data: zstandard.ZstdCompressor().compress(data)),
])
def test_truncated_compressed_jsonl_is_a_one_line_error(tmp_path: Path, suffix, compress):
    data = compress("".join(json.dumps({"id": i, "text": "word " * 50}) + "\n" for i in range(500)).encode())
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=rf"cut{suffix.replace('.', '[.]')}: truncated"):
        list(read_documents(path))
    whole = tmp_path / f"whole{suffix}"
    whole.write_bytes(data + data)  # two members/frames back to back read as one stream
    assert len(list(read_documents(whole))) == 1000


def test_truncated_gzip_through_the_cli_is_one_line_and_exit_2(tmp_path: Path):
    import subprocess
    import sys

    data = gzip.compress(b"".join(json.dumps({"id": i, "text": "x " * 40}).encode() + b"\n" for i in range(300)))
    (tmp_path / "cut.jsonl.gz").write_bytes(data[:-20])
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "prepare", "--in", str(tmp_path / "cut.jsonl.gz"),
                           "--out", str(tmp_path / "out"), "--steps", "normalize"], capture_output=True, text=True)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "cut.jsonl.gz: truncated gzip file" in errors[0] and "Traceback" not in proc.stderr


def test_damaged_parquet_is_a_one_line_error(tmp_path: Path):
    from tokenmill.documents import write_parquet

    good = tmp_path / "good.parquet"
    write_parquet([{"id": str(i), "text": "word " * 200 + str(i)} for i in range(2000)], good)
    data = good.read_bytes()
    for name, damaged in [("cut.parquet", data[: len(data) // 2]), ("zeroed.parquet", data[:4] + b"\0" * 4000 + data[4004:])]:
        (tmp_path / name).write_bytes(damaged)
        with pytest.raises(UserError, match=rf"{name}: (not a readable|damaged) Parquet") as info:
            list(read_documents(tmp_path / name))
        assert "\n" not in str(info.value)


@pytest.fixture
def memory_url(request):
    """A prefix on fsspec's in-memory filesystem: the URL code path without a server."""
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/tokenmill-{request.node.name}"
    yield f"memory://{root}"
    if fs.exists(root):
        fs.rm(root, recursive=True)


def test_documents_at_a_url_are_listed_read_and_written_through_fsspec(tmp_path: Path, memory_url):
    import fsspec

    fs = fsspec.filesystem("memory")
    records = [{"id": "a", "text": "one", "lang": "en"}, {"id": "b", "text": "دو", "n": 2}]
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    fs.pipe(f"{memory_url[len('memory://'):]}/in/x.jsonl.gz", gzip.compress(lines))
    fs.pipe(f"{memory_url[len('memory://'):]}/in/y.jsonl.zst", zstandard.ZstdCompressor().compress(lines))
    docs = list(read_documents(f"{memory_url}/in"))
    assert [(d.id, d.text) for d in docs] == [("a", "one"), ("b", "دو")] * 2

    # Shards written at a URL: byte-identical to local ones, in one schema (the second shard has `n`).
    for where in (str(tmp_path / "out"), f"{memory_url}/out"):
        with ShardWriter(where, shard_size=1) as writer:
            writer.write_all(Document(r["id"], r["text"], {k: v for k, v in r.items() if k not in ("id", "text")})
                             for r in records)
    root = memory_url[len("memory://"):]
    for name in ("part-00000.parquet", "part-00001.parquet"):
        assert fs.cat_file(f"{root}/out/{name}") == (tmp_path / "out" / name).read_bytes(), name
    assert [d.meta for d in read_documents(f"{memory_url}/out")] == [{"lang": "en", "n": None}, {"lang": None, "n": 2}]
    with pytest.raises(UserError, match=f"^{memory_url}/missing: no such file or directory$"):
        list(read_documents(f"{memory_url}/missing"))


def test_an_output_at_a_url_is_uploaded_only_when_the_stage_succeeded(memory_url):
    import fsspec

    fs = fsspec.filesystem("memory")
    out, root = f"{memory_url}/corpus", memory_url[len("memory://"):] + "/corpus"
    with atomic_directory(out, "prepare") as tmp:
        (tmp / "stats.json").write_text(json.dumps({"stage": "prepare", "v": 1}))
        (tmp / "plots").mkdir()
        (tmp / "plots" / "a.csv").write_text("x")
    assert sorted(fs.find(root)) == [f"{root}/plots/a.csv", f"{root}/stats.json"]
    with pytest.raises(RuntimeError):
        with atomic_directory(out, "prepare") as tmp:
            (tmp / "stats.json").write_text(json.dumps({"stage": "prepare", "v": 2}))
            raise RuntimeError("the stage failed")
    assert json.loads(fs.cat_file(f"{root}/stats.json"))["v"] == 1  # the old output, untouched
    with atomic_directory(out, "prepare") as tmp:  # its own earlier output: replaced whole
        (tmp / "stats.json").write_text(json.dumps({"stage": "prepare", "v": 3}))
    assert sorted(fs.find(root)) == [f"{root}/stats.json"]
    with pytest.raises(UserError, match="is the output of stage 'prepare', not an earlier tokenize output"):
        with atomic_directory(out, "tokenize"):
            pass


def test_shards_are_the_tables_pyarrow_infers_from_the_records(tmp_path: Path):
    """ShardWriter builds plain columns (str, int, float, bool, null) from buffers, without pa.array
    (whose first call imports pandas): the same schema and the same Parquet bytes as
    pa.Table.from_pylist on the records; other columns (lists, objects, mixed types) go through it."""
    import io
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tokenmill.documents import _documents_table

    rng = random.Random(7)
    makers = {
        "str": lambda: "".join(rng.choice("aé€😀 \x00z") for _ in range(rng.randint(0, 6))),
        "int": lambda: rng.choice([0, -1, 2**63 - 1, -2**63, rng.randint(-9, 9)]),
        "float": lambda: rng.choice([0.0, -0.0, float("nan"), float("inf"), 1.5, rng.random()]),
        "bool": lambda: rng.random() < 0.5,
        "list": lambda: [rng.randint(0, 3)] * rng.randint(0, 2),
        "object": lambda: {"k": rng.randint(0, 3)},
        "mixed": lambda: rng.choice([1, 2.5]),
        "null": lambda: None,
    }

    def parquet_bytes(table: pa.Table) -> bytes:
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        return buffer.getvalue()

    for _ in range(60):
        n = rng.randint(1, 30)
        kinds = {f"c{j}": rng.choice(list(makers)) for j in range(rng.randint(0, 5))}
        ids, texts = [str(i) for i in range(n)], [makers["str"]() for _ in range(n)]
        metas = [{c: (makers[k]() if rng.random() > 0.2 else None) for c, k in kinds.items() if rng.random() < 0.8}
                 for _ in range(n)]
        records = [{"id": i, "text": t, **m} for i, t, m in zip(ids, texts, metas)]
        columns = ["id", "text"] + sorted({k for r in records for k in r} - {"id", "text"})
        expected = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in records])
        table, text_bytes = _documents_table(ids, texts, metas)
        assert table.schema.equals(expected.schema, check_metadata=True)
        assert repr(table.to_pylist()) == repr(expected.to_pylist())  # repr: nan == nan
        assert parquet_bytes(table) == parquet_bytes(expected)
        assert text_bytes == sum(len(t.encode("utf-8")) for t in texts)
    writer = ShardWriter(tmp_path / "out", shard_size=10)
    writer.write(Document("a", "é", {"text": "shadowed"}))  # a meta field named like a document's own
    assert writer.bytes == 2
    writer.close()
    assert writer.bytes == 2  # the document's text, as Document.nbytes counts it
    assert [d.text for d in read_documents(tmp_path / "out")] == ["shadowed"]


def test_jsonl_records_are_json_modules_whatever_orjson_does(tmp_path: Path):
    """Lines are parsed by orjson where it gives what json.loads gives; json decides the rest: NaN,
    Infinity, numbers beyond a double, lone surrogates, and integers beyond 64 bits (orjson would
    make them floats), nested too."""
    lines = [
        '{"id": "1", "text": "a", "n": 18446744073709551616, "m": -9223372036854775809}',
        '{"id": "2", "text": "b", "n": 3, "m": 4, "deep": [{"x": 123456789012345678901234}]}',
        '{"id": "3", "text": "c", "f": NaN, "g": 1e400, "s": "\\ud800"}',
        '{"id": "4", "text": "d\\u00e9\\ud83d\\ude00", "f": 0.1000000000000000055511151231257827, "g": -0.0}',
        "   ",
    ]
    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    got = [{"id": d.id, "text": d.text, **d.meta} for d in read_documents(path)]
    assert repr(got) == repr([json.loads(line) for line in lines if line.strip()])


@pytest.mark.parametrize("suffix, opener", [
    (".jsonl", lambda p: open(p, "wb")),
    (".jsonl.gz", lambda p: gzip.open(p, "wb")),
])
def test_texts_are_read_by_position_as_read_documents_counts_them(tmp_path: Path, suffix, opener):
    from tokenmill.documents import count_documents, read_texts

    # blank lines (ASCII and Unicode whitespace) are not documents, wherever they are
    lines = ["", json.dumps({"id": "a", "text": "first"}), "  \t", json.dumps({"id": "b", "text": "سلام\u200cدنیا"},
             ensure_ascii=False), "\u3000\x1c", json.dumps({"id": "c", "text": "trzeci", "n": 1}), ""]
    jsonl = tmp_path / f"docs{suffix}"
    with opener(jsonl) as handle:
        handle.write("\n".join(lines).encode("utf-8"))
    with ShardWriter(tmp_path / "shards") as writer:
        for doc in read_documents(jsonl):
            writer.write(doc)
    parquet = sorted((tmp_path / "shards").glob("*.parquet"))[0]
    for file in (jsonl, parquet):
        texts = [d.text for d in read_documents(file)]
        assert texts == ["first", "سلام\u200cدنیا", "trzeci"]
        assert count_documents(file) == 3
        assert read_texts(file, [2, 0]) == {0: "first", 2: "trzeci"}
        assert read_texts(file, [1, 7]) == {1: "سلام\u200cدنیا"}  # past the end: absent
        assert read_texts(file, []) == {}
