import random

import pyarrow.parquet as pq
import pytest
from quality_samples import boilerplate, prose
from test_prepare_pipeline import CORPUS, write_corpus

from dataprep.config import PrepareConfig
from dataprep.pipeline import run
from dataprep.select import select
from dataprep.steps.pii import PIIConfig, PIIReplacer
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


SCRUBS_TWICE = ".text 294880 8192  .data 81920 303104  .bss 11592 385024  Total 388392"


def personal(rng):
    return rng.choice(["Call +48 601 234 567 or write to jan.kowalski@example.pl.",
                       "Phone: (415) 555-2671, mail info@example.com", "تلفن: ۰۹۱۲ ۳۴۵ ۶۷۸۹"])


def test_select_with_the_default_steps_equals_a_fresh_prepare(tmp_path):
    # the default steps: normalize, language, pii (before everything that measures again), the filters, both
    # dedup steps; personal data to scrub, exact and near copies to cluster
    rng = random.Random(7)
    base = records()
    docs = [dict(r, text=r["text"] + "\n" + personal(rng)) if i % 2 else r for i, r in enumerate(base)]
    # text that scrubs differently twice (from size(1)'s output in a Debian man page): the first pass takes
    # "294880 8192" for a phone number, the second then "81920 303104" beside the placeholder
    docs[0] = dict(docs[0], text=docs[0]["text"] + "\n" + SCRUBS_TWICE)
    assert PIIReplacer(PIIConfig()).scrub(SCRUBS_TWICE, "en").count("<PHONE>") == 1
    docs += [dict(r, id=r["id"] + "-copy") for r in docs[::5]]
    docs += [dict(r, id=r["id"] + "-near", text=r["text"] + " And one more line.") for r in docs[1::4]]

    def default(**quality):
        c = PrepareConfig()
        c.keep_signals = True
        for key, value in quality.items():
            setattr(c.quality, key, value)
        return c

    assert default().steps.index("pii") < default().steps.index("repetition")
    inp = write_corpus(tmp_path / "docs.jsonl", docs)
    first = run(inp, tmp_path / "corpus", default())
    assert first["per_step"]["pii"]["changed"] and first["removed"].get("near_dedup")
    selected = select(tmp_path / "corpus", tmp_path / "selected", default(min_words=120))
    fresh = run(inp, tmp_path / "fresh", default(min_words=120))
    assert shards(tmp_path / "selected") == shards(tmp_path / "fresh")
    assert selected["removed"] == fresh["removed"] != first["removed"]
