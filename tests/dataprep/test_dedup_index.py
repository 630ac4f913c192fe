import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from pipeline.cli import main

POOL = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra", "so", "tu") for b in range(400)]


def corpus(seed=0, originals=40):
    """Distinct documents, plus exact and near copies of some of them (ids say which)."""
    rng = np.random.default_rng(seed)
    docs = {f"doc-{i:03d}": " ".join(rng.choice(POOL, 120)) for i in range(originals)}
    copies = {}
    for i in range(0, originals, 4):
        words = docs[f"doc-{i:03d}"].split()
        copies[f"exact-of-{i:03d}"] = " ".join(words)
        words[60] = "x"  # shorter: the original stays; Jaccard 0.92 (detected with p > 0.9999)
        copies[f"near-of-{i:03d}"] = " ".join(words)
    return docs, copies


def write_jsonl(directory, records):
    directory.mkdir(parents=True)
    with open(directory / "docs.jsonl", "w") as f:
        for doc_id, text in records.items():
            f.write(json.dumps({"id": doc_id, "text": text}) + "\n")
    return directory


def rows(directory):
    return {r["id"]: r for shard in sorted(directory.glob("part-*.parquet")) for r in pq.read_table(shard).to_pylist()}


def dedup(inp, out, index, *extra, command=("dedup",)):
    return main([*command, "--in", str(inp), "--out", str(out), "--index", str(index), *extra])


# `tokenmill dedup`, and `tokenmill prepare` with a per-document step before dedup (pass two then re-reads
# the Parquet shards that step wrote, not the input)
COMMANDS = [("dedup",), ("prepare", "--steps", "normalize,exact_dedup,near_dedup")]


@pytest.fixture
def halves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # default params
    docs, copies = corpus()
    first = dict(list(docs.items())[:20])
    second = {**dict(list(docs.items())[20:]), **copies}  # copies of doc-000..019 cross the halves
    return write_jsonl(tmp_path / "first", first), write_jsonl(tmp_path / "second", second), first, second


@pytest.mark.parametrize("command", COMMANDS)
def test_two_halves_through_one_index_find_the_duplicates_across_halves(tmp_path, halves, command):
    first_dir, second_dir, first, second = halves
    index = tmp_path / "index"
    assert dedup(first_dir, tmp_path / "out1", index, command=command) == 0
    shutil.rmtree(first_dir)  # the second batch must not need the first one's documents again
    assert dedup(second_dir, tmp_path / "out2", index, command=command) == 0

    assert sorted(rows(tmp_path / "out1")) == sorted(first)
    kept, removed = rows(tmp_path / "out2"), rows(tmp_path / "out2" / "removed")
    crossing = {k: "doc-" + k[-3:] for k in second if "-of-" in k and int(k[-3:]) < 20}
    within = {k: "doc-" + k[-3:] for k in second if "-of-" in k and int(k[-3:]) >= 20}
    assert {k: r["duplicate_of"] for k, r in removed.items()} == {**crossing, **within}
    assert sorted(kept) == sorted(k for k in second if k.startswith("doc-"))
    stats = json.loads((tmp_path / "out2" / "stats.json").read_text())
    assert stats["per_step"]["exact_dedup"]["matched_index"] == 5  # exact copies of doc-000, -004, ... -016
    assert stats["per_step"]["near_dedup"]["matched_index"] == 5
    manifest = json.loads((index / "manifest.json").read_text())
    assert [b["documents"] for b in manifest["batches"]] == [20, 20]


def test_rerunning_a_batch_does_not_dedup_it_against_itself(tmp_path, halves):
    first_dir, second_dir, first, _ = halves
    index = tmp_path / "index"
    assert dedup(first_dir, tmp_path / "out1", index) == 0
    assert dedup(first_dir, tmp_path / "again", index) == 0
    assert sorted(rows(tmp_path / "again")) == sorted(first)
    assert len(json.loads((index / "manifest.json").read_text())["batches"]) == 1
    assert sorted(p.name for p in index.glob("batch-*.npz")) == ["batch-00001.npz"]


def test_an_index_made_with_other_minhash_settings_is_a_one_line_error(tmp_path, halves, capsys):
    first_dir, second_dir, _, _ = halves
    index = tmp_path / "index"
    assert dedup(first_dir, tmp_path / "out1", index) == 0
    capsys.readouterr()
    assert dedup(second_dir, tmp_path / "out2", index, "--set", "prepare.near_dedup.seed=5") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seed=1" in err and "seed=5" in err and str(index) in err
    assert not (tmp_path / "out2").exists()


def test_a_failed_record_leaves_the_index_as_it_was(tmp_path, halves, monkeypatch):
    first_dir, second_dir, _, _ = halves
    index = tmp_path / "index"
    assert dedup(first_dir, tmp_path / "out1", index) == 0
    before = {p.name: p.read_bytes() for p in index.iterdir() if p.is_file()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        dedup(second_dir, tmp_path / "out2", index)
    after = {p.name: p.read_bytes() for p in index.iterdir() if p.is_file()}
    assert after == before and not (tmp_path / "out2").exists()
