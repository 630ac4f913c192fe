import gzip
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import zstandard
from dataprep_samples import ENGLISH, ENGLISH_OTHER, GERMAN, PERSIAN, POLISH

from dataprep.config import PrepareConfig
from dataprep.pipeline import run, step_groups
from tokenmill.documents import write_parquet
from tokenmill.errors import ConfigError, UserError

LONG = ENGLISH + "\n\n" + ENGLISH_OTHER
CORPUS = [
    {"id": "en", "text": ENGLISH + "\n\nWrite to jan@example.org or call +48 22 123 45 67.", "site": "a"},
    {"id": "fa", "text": PERSIAN, "site": "b", "lang": "fa-IR"},
    {"id": "pl-page", "text": LONG, "site": "c", "lang": "pl-PL"},  # English labelled Polish
    {"id": "pl", "text": POLISH, "site": "c"},
    {"id": "de", "text": GERMAN, "site": "d"},
    {"id": "short", "text": "The page you are looking for is not available in this language.", "site": "a"},
    {"id": "copy", "text": ENGLISH_OTHER, "site": "a"},
    {"id": "copy-2", "text": ENGLISH_OTHER.replace("  ", " "), "site": "b"},
    {"id": "near", "text": LONG.replace("volunteers", "people").replace("embankment", "dike"), "site": "e"},
]


def write_corpus(path: Path, records=CORPUS) -> Path:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if path.name.endswith(".parquet"):
        write_parquet([{"lang": None, **r} for r in records], path)
    elif path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(lines.encode()))
    elif path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(lines.encode()))
    else:
        path.write_text(lines, encoding="utf-8")
    return path


def read_rows(directory: Path) -> dict[str, dict]:
    rows = {}
    for shard in sorted(directory.glob("part-*.parquet")):
        rows.update({r["id"]: r for r in pq.read_table(shard).to_pylist()})
    return rows


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["docs.jsonl", "docs.jsonl.gz", "docs.jsonl.zst", "docs.parquet"])
def test_end_to_end(tmp_path, name):
    stats = run(write_corpus(tmp_path / name), tmp_path / "out", PrepareConfig())

    kept, removed = read_rows(tmp_path / "out"), read_rows(tmp_path / "out" / "removed")
    assert sorted(kept) == ["copy", "en", "fa", "pl", "pl-page"]
    assert {i: r["reason"] for i, r in removed.items()} == {
        "de": "language:de",
        "short": "quality:min_words",
        "copy-2": "exact_dedup",
        "near": "near_dedup",
    }
    assert removed["copy-2"]["duplicate_of"] == "copy" and removed["near"]["duplicate_of"] == "pl-page"
    assert {i: r["site"] for i, r in kept.items()} == {"copy": "a", "en": "a", "fa": "b", "pl": "c", "pl-page": "c"}
    assert {i: r["lang"] for i, r in kept.items()} == {"copy": "en", "en": "en", "fa": "fa", "pl": "pl", "pl-page": "en"}
    assert kept["pl-page"]["declared_lang"] == "pl-PL"
    assert kept["en"]["text"].endswith("Write to <EMAIL> or call <PHONE>.")

    on_disk = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert on_disk == stats
    assert stats["documents_in"] == 9 and stats["documents_out"] == 5
    assert stats["bytes_out"] == sum(len(r["text"].encode()) for r in kept.values())
    assert stats["removed"] == {"exact_dedup": 1, "language:de": 1, "near_dedup": 1, "quality:min_words": 1}
    assert stats["languages"] == {"de": 1, "en": 6, "fa": 1, "pl": 1}
    assert stats["pii_replaced"] == {"email": 1, "phone": 1}
    assert stats["dedup_clusters"] == {
        "exact_dedup": {"clusters": 1, "sizes": {"2": 1}},
        "near_dedup": {"clusters": 1, "sizes": {"2": 1}},
    }
    assert stats["per_step"]["quality"] == {"documents_in": 8, "documents_out": 7, "removed": {"quality:min_words": 1}}
    assert stats["steps"] == PrepareConfig().steps

    plots = tmp_path / "out" / "plots"
    assert (plots / "removals.csv").read_text().splitlines() == [
        "reason,documents", "exact_dedup,1", "language:de,1", "near_dedup,1", "quality:min_words,1"
    ]
    assert (plots / "dedup_clusters.csv").read_text().splitlines() == [
        "step,cluster_size,clusters", "exact_dedup,2,1", "near_dedup,2,1"
    ]
    for svg in ("removals.svg", "dedup_clusters.svg"):
        assert (plots / svg).read_bytes().startswith(b"<svg ")


def test_rerun_is_byte_identical(tmp_path):
    source = write_corpus(tmp_path / "docs.jsonl")
    run(source, tmp_path / "a", PrepareConfig())
    run(source, tmp_path / "b", PrepareConfig(shard_size=10_000))
    first = tree_bytes(tmp_path / "a")
    assert first == tree_bytes(tmp_path / "b")
    assert "plots/removals.svg" in first and "removed/part-00000.parquet" in first


def test_small_shards_and_a_directory_input(tmp_path):
    (tmp_path / "in").mkdir()
    write_corpus(tmp_path / "in" / "a.jsonl", CORPUS[:4])
    write_corpus(tmp_path / "in" / "b.jsonl", CORPUS[4:])
    stats = run(tmp_path / "in", tmp_path / "out", PrepareConfig(shard_size=2))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.parquet")) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"
    ]
    assert stats["shards"] == 3 and len(read_rows(tmp_path / "out")) == 5


def test_step_groups_run_only_their_steps(tmp_path):
    groups = step_groups()
    assert groups == {
        "normalize": ["normalize"],
        "filter": ["language", "url_filter", "quality", "repetition", "decontaminate"],
        "dedup": ["exact_dedup", "near_dedup"],
        "scrub": ["pii"],
    }
    source = write_corpus(tmp_path / "docs.jsonl")
    stats = run(source, tmp_path / "dedup", PrepareConfig(), steps=groups["dedup"])
    assert stats["removed"] == {"exact_dedup": 1, "near_dedup": 1}
    assert "languages" not in stats and "pii_replaced" not in stats
    stats = run(source, tmp_path / "scrub", PrepareConfig(), steps=groups["scrub"])
    assert stats["documents_out"] == 9 and stats["pii_replaced"] == {"email": 1, "phone": 1}


def test_unknown_step_is_a_config_error(tmp_path):
    source = write_corpus(tmp_path / "docs.jsonl")
    with pytest.raises(ConfigError, match=r"prepare\.steps: unknown step 'spellcheck'"):
        run(source, tmp_path / "out", PrepareConfig(), steps=["normalize", "spellcheck"])
    assert not (tmp_path / "out").exists()


def test_bad_input_is_a_user_error_with_file_and_line(tmp_path):
    source = tmp_path / "docs.jsonl"
    source.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": \n')
    with pytest.raises(UserError, match=r"docs\.jsonl:2: invalid JSON"):
        run(source, tmp_path / "out", PrepareConfig())
    source.write_text('{"id": "a", "text": 42}\n')
    with pytest.raises(UserError, match=r"docs\.jsonl:1: field 'text' must be a string"):
        run(source, tmp_path / "out", PrepareConfig())
    with pytest.raises(UserError, match="no such file"):
        run(tmp_path / "missing", tmp_path / "out", PrepareConfig())
    assert not (tmp_path / "out").exists()


def test_failed_run_leaves_the_previous_output(tmp_path):
    run(write_corpus(tmp_path / "docs.jsonl"), tmp_path / "out", PrepareConfig())
    before = tree_bytes(tmp_path / "out")
    (tmp_path / "docs.jsonl").write_text('{"id": "a", "text": "x"}\nnot json\n')
    with pytest.raises(UserError):
        run(tmp_path / "docs.jsonl", tmp_path / "out", PrepareConfig())
    assert tree_bytes(tmp_path / "out") == before


def test_real_news_articles_mostly_survive(tmp_path, shared_data):
    truth = json.loads((shared_data / "article-extraction-benchmark" / "ground-truth.json").read_text())
    records = [{"id": key, "text": page["articleBody"], "url": page["url"]} for key, page in sorted(truth.items())]
    stats = run(write_corpus(tmp_path / "news.jsonl", records), tmp_path / "out", PrepareConfig())
    english = stats["languages"]["en"]
    assert english >= 0.8 * len(records)  # the benchmark is mostly English news
    assert stats["documents_out"] >= 0.9 * english  # and most real articles pass the Gopher rules


def test_removed_documents_are_scrubbed_too(tmp_path):
    short = {"id": "short-pii", "text": "Mail anna@example.com now.", "site": "a"}
    run(write_corpus(tmp_path / "docs.jsonl", CORPUS + [short]), tmp_path / "out", PrepareConfig())
    removed = read_rows(tmp_path / "out" / "removed")
    assert removed["short-pii"]["text"] == "Mail <EMAIL> now."
    assert all("@example" not in row["text"] for row in removed.values())
