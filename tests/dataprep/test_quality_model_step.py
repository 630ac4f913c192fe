import json

import pyarrow.parquet as pq
import pytest
from quality_samples import boilerplate, labelled, prose

from dataprep.config import PrepareConfig
from dataprep.pipeline import run
from dataprep.quality import Example, QualityTrainConfig, train
from dataprep.steps.quality_model import kept_by_rank
from tokenmill.errors import ConfigError


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality_model") / "model"
    train([Example(r["id"], r["text"], bool(r["label"]), r["lang"]) for r in labelled()], out, QualityTrainConfig())
    return out


def corpus(path, rng_seed=7):
    import random

    rng = random.Random(rng_seed)
    records = [{"id": f"{lang}-{kind}{i}", "text": (prose if kind == "good" else boilerplate)(lang, rng), "lang": lang}
               for lang in ("en", "fa", "pl") for kind in ("good", "menu") for i in range(4)]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def rows(directory):
    return {r["id"]: r for shard in sorted(directory.glob("part-*.parquet")) for r in pq.read_table(shard).to_pylist()}


def prepared(tmp_path, model, **settings):
    config = PrepareConfig()
    config.quality_model.model = str(model)
    for key, value in settings.items():
        setattr(config.quality_model, key, value)
    stats = run(corpus(tmp_path / "in.jsonl"), tmp_path / "out", config, steps=["quality_model"])
    return stats, rows(tmp_path / "out"), rows(tmp_path / "out" / "removed")


def test_threshold_keeps_prose_and_scores_every_document(tmp_path, model):
    stats, kept, removed = prepared(tmp_path, model)
    assert sorted(kept) == sorted(i for i in kept | removed if "good" in i)
    assert all(r["reason"] == "quality_model:threshold" for r in removed.values())
    assert all(r["quality_score"] >= 0.5 for r in kept.values()) and all(r["quality_score"] < 0.5 for r in removed.values())
    assert stats["removed"] == {"quality_model:threshold": 12}


def test_top_fraction_keeps_the_best_share_of_each_language(tmp_path, model):
    _, kept, removed = prepared(tmp_path, model, top_fraction=0.25)
    assert {lang: sum(i.startswith(lang) for i in kept) for lang in ("en", "fa", "pl")} == {"en": 2, "fa": 2, "pl": 2}
    assert all("good" in i for i in kept) and {r["reason"] for r in removed.values()} == {"quality_model:top_fraction"}


def test_kept_by_rank_is_stable():
    assert kept_by_rank([0.2, 0.9, 0.9, 0.1], 0.5) == [False, True, True, False]
    assert kept_by_rank([0.5, 0.5, 0.5], 0.34) == [True, True, False]


def test_the_step_needs_a_model(tmp_path):
    with pytest.raises(ConfigError, match="prepare.quality_model.model"):
        run(corpus(tmp_path / "in.jsonl"), tmp_path / "out", PrepareConfig(), steps=["quality_model"])


def test_scores_do_not_depend_on_the_batch(tmp_path, model, monkeypatch):
    import dataprep.steps.quality_model as step

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    _, kept, removed = prepared(tmp_path / "a", model)
    monkeypatch.setattr(step, "BATCH", 3)  # other neighbours, other batch sizes
    _, kept3, removed3 = prepared(tmp_path / "b", model)
    scores = {i: r["quality_score"] for i, r in (kept | removed).items()}
    assert scores == {i: r["quality_score"] for i, r in (kept3 | removed3).items()} and len(scores) == 24


def test_the_step_scores_as_the_trained_model(tmp_path, model):
    from dataprep.quality import QualityModel

    _, kept, removed = prepared(tmp_path, model)
    scorers = QualityModel(model)
    for record in (kept | removed).values():
        expected = scorers.scorer(record["lang"]).score([record["text"]], record["lang"])[0]
        assert record["quality_score"] == round(float(expected), 6)
