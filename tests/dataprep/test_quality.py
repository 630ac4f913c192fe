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
