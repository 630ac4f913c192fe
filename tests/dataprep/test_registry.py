"""The step registry: one place the pipeline, the config and the CLI read."""

import subprocess
import sys
from dataclasses import dataclass

import pytest

from dataprep import registry
from dataprep.config import PrepareConfig, prepare_config_class
from dataprep.pipeline import run, step_groups
from dataprep.step import Filter
from dataprep.text import view
from tokenmill.config import build
from tokenmill.documents import Document
from tokenmill.errors import ConfigError

KEPT_NAMES = ["normalize", "language", "pii", "quality", "repetition", "exact_dedup", "near_dedup"]


def test_todays_step_names_are_known_and_on_by_default():
    assert [n for n in registry.default_steps() if n in KEPT_NAMES] == KEPT_NAMES
    assert set(KEPT_NAMES) <= set(registry.steps())
    assert PrepareConfig().steps == registry.default_steps()


def test_known_but_off_by_default_steps_are_configurable_and_runnable():
    off = [name for name, spec in registry.steps().items() if not spec.default]
    for name in off:
        assert name not in PrepareConfig().steps
        assert build(PrepareConfig, {"steps": [name]}, "params.yaml: prepare").steps == [name]


def test_every_step_has_its_params_section():
    config = PrepareConfig()
    for name, spec in registry.steps().items():
        if spec.config is not None:
            assert isinstance(getattr(config, name), spec.config)


def test_a_new_step_is_one_class_and_one_line_of_params(tmp_path, monkeypatch):
    @dataclass
    class NoDigitsConfig:
        reason: str = "digits"

    monkeypatch.setattr(registry, "_STEPS", dict(registry._STEPS))
    prepare_config_class.cache_clear()

    @registry.register_step("no_digits", config=NoDigitsConfig, group="filter", order=35, default=False)
    class NoDigits(Filter):
        def __init__(self, config, on_remove=None):
            super().__init__(on_remove)
            self.config = config

        def reject(self, doc):
            return f"no_digits:{self.config.reason}" if any(ch.isdigit() for ch in doc.text) else None

    try:
        config = build(prepare_config_class(), {"steps": ["no_digits"]}, "params.yaml: prepare")
        src = tmp_path / "in.jsonl"
        src.write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "2"}\n', encoding="utf-8")
        stats = run(src, tmp_path / "out", config)
        assert stats["removed"] == {"no_digits:digits": 1}
        assert "no_digits" not in step_groups()["filter"]  # known, not on by default
    finally:
        prepare_config_class.cache_clear()


def test_unknown_step_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown step 'nope'.*quality"):
        build(PrepareConfig, {"steps": ["nope"]}, "params.yaml: prepare")


def test_help_lists_every_registered_step():
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "prepare", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for name in registry.steps():
        assert f"  {name} " in out


def test_words_are_split_once_per_document_text():
    doc = Document("a", "Hello, world -- (again).", {"lang": "en-US"})
    first = view(doc)
    assert first.words == ["Hello", "world", "again"] and first.lang == "en"
    assert view(doc) is first and view(doc).words is first.words
    doc.text = "changed text"
    assert view(doc) is not first and view(doc).words == ["changed", "text"]


def test_words_per_language():
    assert view(Document("fa", "می‌خواهم این را (بخوانم).", {"lang": "fa"})).words == ["می‌خواهم", "این", "را", "بخوانم"]
    assert view(Document("zh", "我们在北京。", {"lang": "zh"})).words == ["我", "们", "在", "北", "京"]


def test_code_point_classes_match_str_and_re():
    import re

    from dataprep.text import ALNUM, LETTER, SPACE, char_classes

    classes = char_classes()
    for c in range(0, 0x110000, 7):
        ch = chr(c)
        assert bool(classes[c] & ALNUM) == ch.isalnum(), hex(c)
        assert bool(classes[c] & SPACE) == ch.isspace(), hex(c)
        assert bool(classes[c] & LETTER) == bool(re.fullmatch(r"[^\W\d_]", ch)), hex(c)


def test_array_forms_agree_with_the_word_lists():
    from dataprep.steps.gopher_quality import alphabetic_tokens

    texts = [
        ("en", "Hello, world -- (again). 3.14 x_y _a_ don't  İstanbul\u00a0ΟΔΟΣ. 42 -- ... …\n\n#tag"),
        ("zh", "我们在北京。Hello, 世界 don't ｶﾀｶﾅ 123 ・x"),
        ("ja", "これは テスト です。abc_def"),
        ("pl", ""),
        ("fa", "   \n\t "),
        ("de", "a\u2003b\x1cc\x85d e\u200bf"),
    ]
    for lang, text in texts:
        v = view(Document("d", text, {"lang": lang}))
        assert v.word_lengths.tolist() == [len(w) for w in v.words], (lang, text)
        ids = v.word_ids.tolist()
        assert all((ids[i] == ids[j]) == (v.words[i] == v.words[j]) for i in range(len(ids)) for j in range(len(ids)))
        assert v.token_count == len(v.tokens)
        assert v.alpha_token_count == alphabetic_tokens(v.spaced_words)
        vocabulary = {"hello", "istanbul", "テ"}
        every = sum(w in vocabulary for w in v.lower_words)
        assert v.count_words_in(vocabulary, 100) == every
        assert v.count_words_in(vocabulary, 1) == min(every, 1)


def test_batch_views_agree_with_each_view_alone():
    from dataprep.text import TextView, prepare_views

    texts = [("en", "Hello, world -- (again). 3.14 x_y don't\n\n#tag ..."), ("zh", "我们在北京。Hello, 世界 don't"),
             ("pl", ""), ("fa", "   \n\t "), ("ja", "これは テスト です。abc_def"), ("de", "a\u2003b\x1cc\x85d e\u200bf"),
             ("en", "-- ' x")]
    docs = [Document(str(i), text, {"lang": lang}) for i, (lang, text) in enumerate(texts)]
    for doc, batch in zip(docs, prepare_views(docs)):
        alone = TextView(doc.text, batch.lang)
        assert batch.word_lengths.tolist() == alone.word_lengths.tolist()
        assert batch.word_ids.tolist() == alone.word_ids.tolist()
        assert (batch.token_count, batch.alpha_token_count) == (alone.token_count, alone.alpha_token_count)


def test_any_in_decides_every_span_as_a_plain_search():
    import numpy as np

    from dataprep.text import any_in

    rng = np.random.default_rng(0)
    for _ in range(200):  # long spans without the bit: both the few and the many left after the first steps
        size = int(rng.integers(1, 400))
        classes = rng.choice(np.array([0, 1, 2, 4, 5], dtype=np.uint8), size=size, p=[0.05, 0.7, 0.1, 0.05, 0.1])
        lo = np.sort(rng.integers(0, size, size=int(rng.integers(1, 60))))
        hi = np.minimum(lo + rng.integers(1, 40, size=len(lo)), size)
        for bit in (2, 4):
            expected = [bool(np.any(classes[a:b] & bit)) for a, b in zip(lo.tolist(), hi.tolist())]
            assert any_in(classes, bit, lo, hi).tolist() == expected


def test_long_numbers_and_punctuation_runs_count_as_the_word_lists():
    from dataprep.steps.gopher_quality import alphabetic_tokens
    from dataprep.text import prepare_views

    texts = [" ".join(["1234567890123", "x" + "-" * 20 + "y", "12345678901234567890a", "a" + ".," * 12 + "b"] * k)
             for k in (1, 3, 20)]
    texts.append("prose " * 400 + "1234567890123 " + "prose " * 400)  # one long span in a long text
    for v in prepare_views([Document(str(i), text, {"lang": "en"}) for i, text in enumerate(texts)]):
        assert v.word_lengths.tolist() == [len(w) for w in v.words]
        assert v.alpha_token_count == alphabetic_tokens(v.spaced_words)
        assert v.token_count == len(v.tokens)
