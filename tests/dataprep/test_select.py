import random

import pyarrow.parquet as pq
import pytest
from quality_samples import boilerplate, prose
from test_prepare_pipeline import CORPUS, write_corpus

from dataprep.config import PrepareConfig
from dataprep.pipeline import run
from dataprep.select import select
from tokenmill.errors import UserError

STEPS = ["normalize", "language", "quality", "fineweb"]


def records():
    rng = random.Random(5)
    extra = [{"id": f"{lang}-{i}", "text": " ".join(prose(lang, rng) for _ in range(rng.randint(1, 6)))
              + ("\n" + boilerplate(lang, rng) if i % 3 == 0 else "")} for lang in ("en", "fa", "pl") for i in range(12)]
    return CORPUS + extra


def config(**quality):
    c = PrepareConfig()
    c.steps, c.keep_signals = STEPS, True
    for key, value in quality.items():
        setattr(c.quality, key, value)
    return c


def shards(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.parquet"))}


@pytest.mark.parametrize("change", [{"min_words": 120}, {"min_words": 5, "min_stop_words": 3}])
def test_select_equals_a_fresh_prepare_with_the_new_thresholds(tmp_path, change):
    inp = write_corpus(tmp_path / "docs.jsonl", records())
    run(inp, tmp_path / "corpus", config())
    selected = select(tmp_path / "corpus", tmp_path / "selected", config(**change))
    fresh = run(inp, tmp_path / "fresh", config(**change))
    assert shards(tmp_path / "selected") == shards(tmp_path / "fresh")
    assert selected["removed"] == fresh["removed"] and selected["removed"] != run(inp, tmp_path / "again", config())["removed"]


def test_signals_are_columns_on_kept_and_removed_documents(tmp_path):
    run(write_corpus(tmp_path / "docs.jsonl", records()), tmp_path / "corpus", config())
    kept = pq.read_table(tmp_path / "corpus" / "part-00000.parquet").to_pylist()
    removed = {r["id"]: r for r in pq.read_table(tmp_path / "corpus" / "removed" / "part-00000.parquet").to_pylist()}
    assert all(r["quality_words"] >= 50 and r["fineweb_line_punct"] > 0.12 and r["language_identified"] for r in kept)
    assert removed["short"]["quality_words"] < 50 and removed["short"]["fineweb_lines"] is None  # never reached fineweb
    assert removed["de"]["language_identified"] == "de" and removed["de"]["quality_words"] is None


def test_a_corpus_without_signals_is_a_user_error(tmp_path):
    c = config()
    c.keep_signals = False
    run(write_corpus(tmp_path / "docs.jsonl"), tmp_path / "corpus", c)
    with pytest.raises(UserError, match="keep_signals=true"):
        select(tmp_path / "corpus", tmp_path / "out", config())
