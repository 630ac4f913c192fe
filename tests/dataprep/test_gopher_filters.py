import pytest
from dataprep_samples import ENGLISH, ENGLISH_OTHER, PERSIAN, POLISH

from dataprep.config import QualityConfig, RepetitionConfig
from dataprep.steps.gopher_quality import GopherQuality
from dataprep.steps.gopher_repetition import GopherRepetition
from tokenmill.documents import Document

NOUNS = "debian system package archive server kernel release mirror network volunteer project".split()


def removal_reason(step_class, config, text, lang="en"):
    """The reason `step_class` removes a document with `text`, or None when it keeps it."""
    removed = []
    step = step_class(config, on_remove=lambda doc, reason: removed.append(reason))
    kept = list(step.run([Document("d", text, {"lang": lang})]))
    assert len(kept) + len(removed) == 1
    assert step.removed == {r: 1 for r in removed}
    return removed[0] if removed else None


def quality(text, lang="en", **overrides):
    return removal_reason(GopherQuality, QualityConfig(**overrides), text, lang)


def repetition(text):
    return removal_reason(GopherRepetition, RepetitionConfig(), text)


@pytest.mark.parametrize("text, lang", [(ENGLISH, "en"), (PERSIAN, "fa"), (POLISH, "pl"), (ENGLISH_OTHER, "en")])
def test_real_prose_passes_every_rule(text, lang):
    assert quality(text, lang) is None
    assert repetition(text) is None


def test_min_and_max_words():
    assert quality("Too short to be a page.") == "quality:min_words"
    assert quality(ENGLISH, max_words=60) == "quality:max_words"


def test_mean_word_length():
    assert quality(" ".join(["it is a cat and so on"] * 10)) == "quality:min_mean_word_length"
    assert quality(" ".join(["characteristically", "internationalization"] * 30)) == "quality:max_mean_word_length"


def test_symbol_to_word_ratio():
    assert quality(ENGLISH + " #debian" * 15) == "quality:symbol_word_ratio"
    assert quality(ENGLISH + " and more…" * 15) == "quality:symbol_word_ratio"
    assert quality(ENGLISH + " #debian" * 5) is None


def test_bullet_lines():
    lines = [f"- {noun} item is on the list of things to buy" for noun in NOUNS]
    assert quality("\n".join(lines)) == "quality:bullet_lines"


def test_ellipsis_lines():
    lines = [f"Read more about the new {noun} that the project released this week and why it…" for noun in NOUNS]
    assert quality("\n".join(lines)) == "quality:ellipsis_lines"


def test_words_without_letters():
    assert quality(ENGLISH + " 12,5" * 40) == "quality:alpha_words"


def test_stop_words_follow_the_document_language():
    nouns_only = " ".join(NOUNS * 6)
    assert quality(nouns_only, "en") == "quality:stop_words"
    assert quality(nouns_only, "pl-PL") == "quality:stop_words"
    assert quality(nouns_only, "sw") is None  # no list for Swahili: the rule is skipped
    assert quality(PERSIAN, "fa") is None and quality(POLISH, "pl") is None


def test_duplicate_paragraphs():
    paragraphs = ENGLISH.split("\n\n") + ["Click here to subscribe to our newsletter."] * 3
    assert repetition("\n\n".join(paragraphs)) == "repetition:dup_para_frac"
    short = ["The first note.", "The second note.", "A third note here.", "And the fourth one."]
    assert repetition("\n\n".join([ENGLISH_OTHER, *short, ENGLISH_OTHER])) == "repetition:dup_para_char_frac"


def test_duplicate_lines():
    sentences = ENGLISH_OTHER.replace(". ", ".\n").split("\n")
    assert repetition("\n".join(sentences + ["Share this article"] * 5)) == "repetition:dup_line_frac"
    long_line = ENGLISH.split("\n\n")[0]
    assert repetition("\n".join([long_line, *sentences, long_line])) == "repetition:dup_line_char_frac"


def test_top_ngram():
    text = " ".join(f"big data w{i:03d}" for i in range(40))
    assert repetition(text) == "repetition:top_2gram"


def test_duplicate_ngrams():
    first_sentences = ". ".join(ENGLISH_OTHER.split(". ")[:2])
    assert repetition(ENGLISH_OTHER + " " + first_sentences) == "repetition:dup_5gram"
