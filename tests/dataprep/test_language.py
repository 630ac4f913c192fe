import pytest
from dataprep_samples import ENGLISH, GERMAN, PERSIAN, POLISH

from dataprep.config import LanguageConfig
from dataprep.steps.language import LanguageFilter
from tokenmill.documents import Document
from tokenmill.errors import ConfigError


def run_filter(docs, config=LanguageConfig()):
    removed = {}
    step = LanguageFilter(config, on_remove=lambda doc, reason: removed.setdefault(doc.id, reason))
    return {d.id: d for d in step.run(docs)}, removed, step


def test_identifies_real_sentences_and_writes_columns():
    kept, removed, step = run_filter(
        [Document("en", ENGLISH), Document("fa", PERSIAN), Document("pl", POLISH), Document("de", GERMAN)]
    )
    assert {i: d.meta["lang"] for i, d in kept.items()} == {"en": "en", "fa": "fa", "pl": "pl"}
    assert all(0.5 <= d.meta["lang_score"] <= 1.0 for d in kept.values())
    assert removed == {"de": "language:de"}
    assert step.identified == {"en": 1, "fa": 1, "pl": 1, "de": 1}


def test_short_sentences():
    kept, removed, _ = run_filter(
        [
            Document("en", "Where is the nearest train station, please?"),
            Document("fa", "نزدیک‌ترین ایستگاه قطار کجاست؟"),
            Document("pl", "Gdzie jest najbliższa stacja kolejowa?"),
        ]
    )
    assert {i: d.meta["lang"] for i, d in kept.items()} == {"en": "en", "fa": "fa", "pl": "pl"}


def test_declared_language_is_recorded_but_text_decides():
    kept, _, _ = run_filter([Document("page", ENGLISH, {"lang": "pl-PL"})])
    assert kept["page"].meta["declared_lang"] == "pl-PL"
    assert kept["page"].meta["lang"] == "en"


def test_text_without_language_is_undetermined():
    kept, removed, _ = run_filter([Document("n", "12345 67890 -- 2024"), Document("en", ENGLISH)])
    assert list(kept) == ["en"]
    assert removed == {"n": "language:und"}


def test_low_confidence_is_undetermined():
    _, removed, _ = run_filter([Document("x", "apt-get install")], LanguageConfig(min_score=0.99))
    assert removed == {"x": "language:und"}


def test_allowed_languages_are_configurable():
    kept, removed, _ = run_filter([Document("de", GERMAN), Document("en", ENGLISH)], LanguageConfig(allowed=["de"]))
    assert list(kept) == ["de"] and removed == {"en": "language:en"}


def test_unknown_language_code_is_a_config_error():
    with pytest.raises(ConfigError, match="prepare.language.allowed.*'xx'"):
        LanguageFilter(LanguageConfig(allowed=["en", "xx"]))


def test_expected_languages_come_from_the_source_and_the_score_stays():
    docs = [
        Document("en-in-pl-source", ENGLISH, {"source_languages": ["pl"]}),
        Document("pl-in-pl-source", POLISH, {"source_languages": ["pl-PL"]}),
        Document("de-in-de-source", GERMAN, {"source_languages": ["de", "en"]}),
        Document("de-no-source", GERMAN),  # JSONL input: prepare.language.allowed applies
    ]
    kept, removed, _ = run_filter(docs)
    assert sorted(kept) == ["de-in-de-source", "pl-in-pl-source"]
    assert removed == {"en-in-pl-source": "language:en", "de-no-source": "language:de"}
    assert docs[0].meta["lang"] == "en" and docs[0].meta["lang_score"] > 0.5  # kept on the removed document


def test_bad_source_languages_field_is_a_one_line_error():
    from tokenmill.errors import UserError

    with pytest.raises(UserError, match="document x: field 'source_languages' must be a list"):
        run_filter([Document("x", ENGLISH, {"source_languages": "en"})])


def test_fast_identification_is_identical_to_py3langid():
    import random

    from dataprep.steps.language import language_model

    model = language_model()
    assert model.fast and model.automaton_depth() <= model.DFA_WINDOW
    rng = random.Random(3)
    texts = [ENGLISH, PERSIAN, POLISH, GERMAN, "a", "Zażółć gęślą jaźń", "日本語のテキストです。", "x1 y2 z3 ...",
             ENGLISH[:37], PERSIAN[5:90] + POLISH[:50]]
    texts += ["".join(rng.choice("abcdefghij ąęł سلام 日本\n") for _ in range(rng.randint(1, 400))) for _ in range(40)]
    for text in texts:
        assert model.fast_classify(text) == model.model.classify(text)
