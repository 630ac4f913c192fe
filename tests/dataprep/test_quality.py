import json

import numpy as np
import pytest
from quality_samples import labelled

from dataprep.quality import (Example, QualityModel, QualityTrainConfig, labelled_examples, roc_auc, train)
from tokenmill.errors import UserError


def examples(records):
    return [Example(r["id"], r["text"], bool(r["label"]), r["lang"]) for r in records]


@pytest.fixture(scope="module")
def multilingual(tmp_path_factory):
    out = tmp_path_factory.mktemp("quality") / "model"
    return out, train(examples(labelled()), out, QualityTrainConfig())


def test_a_multilingual_model_separates_prose_from_boilerplate_on_held_out_documents(multilingual):
    out, stats = multilingual
    figures = stats["languages"]["*"]
    assert sum(figures["heldout"].values()) > 60 and figures["roc_auc"] > 0.95
    assert figures["precision"] > 0.9 and figures["recall"] > 0.9
    assert sum(figures["histogram"]["positive"]) == figures["heldout"]["positive"]
    assert figures["model_bytes"] < 1_000_000  # small: quantized
    assert json.loads((out / "stats.json").read_text())["stage"] == "quality"


def test_training_is_deterministic(multilingual, tmp_path):
    out, _ = multilingual
    train(examples(labelled()), tmp_path / "again", QualityTrainConfig())
    assert (tmp_path / "again" / "all.npz").read_bytes() == (out / "all.npz").read_bytes()


def test_one_model_per_language_scores_documents_of_its_language(tmp_path):
    stats = train(examples(labelled()), tmp_path / "m", QualityTrainConfig(), languages=["fa", "pl"])
    assert set(stats["languages"]) == {"fa", "pl"}
    model = QualityModel(tmp_path / "m")
    assert model.scorer("pl") is not model.scorer("fa") and model.scorer("en") is None
    prose, menu = "Projekt został założony w 1993 roku przez Iana Murdocka.", "Strona główna\nKontakt\nKup teraz"
    high, low = model.scorer("pl").score([prose, menu])
    assert high > 0.5 > low


def test_a_language_without_negatives_is_a_user_error(tmp_path):
    records = [r for r in labelled(20) if not (r["lang"] == "pl" and r["label"] == 0)]
    with pytest.raises(UserError, match="no negative examples in language 'pl'"):
        train(examples(records), tmp_path / "m", QualityTrainConfig(), languages=["en", "pl"])


def test_labelled_jsonl_and_its_mistakes(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"text": "a b", "label": "positive"}\n\n{"text": "c", "label": 0, "lang": "pl-PL"}\n')
    assert [(e.label, e.lang) for e in labelled_examples(good)] == [(True, None), (False, "pl")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": "maybe"}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: label must be"):
        list(labelled_examples(bad))


def test_roc_auc():
    labels = np.array([True, True, False, False])
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.2]), labels) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.9, 0.8]), labels) == 0.0
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), labels) == 0.5


def test_a_saved_and_loaded_model_scores_as_the_trained_one(tmp_path):
    from dataprep.quality import QualityScorer, example_views, fit

    config = QualityTrainConfig(ngrams=2)
    records = examples(labelled(30))
    scorer = fit(records, config)
    scorer.save(tmp_path / "m.npz")
    loaded = QualityScorer.load(tmp_path / "m.npz", config.n_features, config.ngrams, config.max_words)
    views = example_views(records)
    assert np.array_equal(scorer.score_views(views), loaded.score_views(views))
    assert np.array_equal(scorer.score([r.text for r in records]), loaded.score([r.text for r in records]))


def test_hashed_features_count_the_first_words_and_their_bigrams_per_document():
    from dataprep.quality import feature_matrix, hashed_features
    from dataprep.text import TextView

    views = [TextView(t, None) for t in ("a b a b", "", "c", "a b a b x y")]
    buckets, at = hashed_features(views, 1 << 20, 2, 4)
    assert np.diff(at).tolist() == [4 + 3, 0, 1, 4 + 3]  # words and bigrams of the first 4 words
    assert sorted(buckets[at[0] : at[1]].tolist()) == sorted(buckets[at[3] : at[4]].tolist())
    matrix = feature_matrix(views, 1 << 20, 2, 4).toarray()
    assert np.allclose(np.linalg.norm(matrix, axis=1), [1, 0, 1, 1])
    assert np.allclose(np.sort(matrix[0][matrix[0] > 0]), np.array([1, 2, 2, 2]) / np.sqrt(13))  # a, b, 'a b' twice; 'b a' once
    # 'a b' and 'b a' are different bigrams; the same text scores alike alone or in a batch
    alone = [hashed_features([TextView("a b a b x y", None)], 1 << 20, 2, 4)[0]]
    assert buckets[at[3] : at[4]].tolist() == alone[0].tolist()


def test_an_old_format_model_is_refused_in_one_line(multilingual, tmp_path):
    out, _ = multilingual
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((out / "model.json").read_text())
    manifest.pop("version")
    (old / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"old/model.json: a quality model of format version 1") as error:
        QualityModel(old)
    assert "\n" not in str(error.value)
