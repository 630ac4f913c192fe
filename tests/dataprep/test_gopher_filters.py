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


def test_duplicated_ngram_characters_are_counted_as_datatrove_does():
    from dataprep.steps.gopher_repetition import duplicated_ngram_chars, top_ngram_chars

    words = "a b c d e a b c d e x".split()
    # 'abcde' at 5 repeats: 5 characters (joined without spaces); the scan jumps past it.
    assert duplicated_ngram_chars(words, 5) == 5
    # Overlapping repeats: 'a a a a a a a' (7 words) → n=5 grams at 0,1,2 are equal: 1st new, 2nd repeat
    # (adds 5, jumps to 6): nothing more fits.
    assert duplicated_ngram_chars(["a"] * 7, 5) == 5
    assert duplicated_ngram_chars("one two three".split(), 5) == 0
    # Most frequent 2-gram 'a b' occurs twice: (1 + 1 + 1 space) × 2.
    assert top_ngram_chars(words, 2) == 6
    assert top_ngram_chars("x y z".split(), 2) == 0  # no 2-gram repeats


def test_duplicated_ngrams_are_a_fraction_of_the_whole_text():
    # One repeated 5-word sentence in a long page is a small fraction of the text's characters.
    unique = " ".join(f"{NOUNS[i % len(NOUNS)]}{i}" for i in range(300))
    text = unique + " the quick brown fox jumps " + "more words here " + "the quick brown fox jumps."
    assert repetition(text) is None
    assert repetition(("the quick brown fox jumps over it " * 20).strip()) is not None


def test_alpha_words_count_attached_punctuation_as_part_of_the_word():
    # Prose with a comma or full stop on most words keeps an alpha ratio of 1 (datatrove's tokenizer
    # would see '.' and ',' tokens and score it near 0.5).
    text = " ".join(f"{NOUNS[i % len(NOUNS)]}, the {NOUNS[(i + 3) % len(NOUNS)]}." for i in range(40))
    assert quality(text) is None
    numbers = " ".join(str(i) for i in range(200)) + " " + ENGLISH
    assert quality(numbers) == "quality:alpha_words"


def test_thresholds_per_language():
    from dataprep.steps.gopher_quality import QualityThresholds

    config = QualityConfig(languages={"fa": QualityThresholds(min_words=500)})
    removed = []
    step = GopherQuality(config, on_remove=lambda doc, reason: removed.append(reason))
    list(step.run([Document("fa", PERSIAN, {"lang": "fa"}), Document("en", ENGLISH, {"lang": "en"})]))
    assert removed == ["quality:min_words"]


def test_the_fast_ngram_counts_equal_the_plain_definitions():
    import random

    from dataprep.steps.gopher_repetition import NgramIndex, duplicated_ngram_chars, top_ngram_chars

    rng = random.Random(7)
    for _ in range(200):
        vocabulary = NOUNS[: rng.randint(2, len(NOUNS))]
        words = [rng.choice(vocabulary) for _ in range(rng.randint(0, 80))]
        grams = NgramIndex(words)
        duplicated = grams.duplicated_chars()
        assert [duplicated[n] for n in range(5, 11)] == [duplicated_ngram_chars(words, n) for n in range(5, 11)]
        assert [grams.top_chars(n) for n in (2, 3, 4)] == [top_ngram_chars(words, n) for n in (2, 3, 4)]


def test_the_cascaded_profile_equals_the_plain_definitions():
    import random

    from dataprep.steps.gopher_repetition import NgramIndex, duplicated_ngram_chars, top_ngram_chars

    rng = random.Random(11)
    for _ in range(200):
        words = [rng.choice(NOUNS[: rng.randint(2, 6)]) for _ in range(rng.randint(0, 120))]
        top, duplicated = NgramIndex(words).profile()
        assert top == {n: top_ngram_chars(words, n) for n in (2, 3, 4)}
        assert duplicated == {n: duplicated_ngram_chars(words, n) for n in range(5, 11)}


def test_alphabetic_tokens_counted_from_words_equal_a_count_over_tokens():
    import re

    from dataprep.steps.gopher_quality import alphabetic_tokens
    from dataprep.text import split_words

    text = "-- 12 a1 1a _x_ x_y 3.14 (see) «ok» 12:30 ... ١٢٣ ۱۲ abc " + ENGLISH + PERSIAN + POLISH
    with_letter = [t for t in text.split() if re.search(r"[^\W\d_]", t)]
    assert alphabetic_tokens(split_words(text)) == len(with_letter)


def test_repetition_batch_decides_as_one_document_at_a_time():
    import random

    rng = random.Random(7)
    vocabulary = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]
    texts = [ENGLISH, ENGLISH_OTHER, PERSIAN, POLISH, "", "word " * 40, ENGLISH + " " + ENGLISH]
    for size in (3, 30, 120, 400):
        for pool in (3, 8):  # few distinct words: repeated n-grams of every length
            texts.append(" ".join(rng.choice(vocabulary[:pool]) for _ in range(size)))
    texts.append(" ".join(f"w{i}" for i in range(300)) + " " + " ".join(f"w{i}" for i in range(40)))
    docs = [Document(str(i), text, {"lang": "en"}) for i, text in enumerate(texts)]
    step = GopherRepetition(RepetitionConfig())
    alone = [step.reject_batch([Document(d.id, d.text, dict(d.meta))])[0] for d in docs]
    assert step.reject_batch(docs) == alone
    assert len(set(alone)) > 2  # the texts exercise several rules


def test_line_paragraph_and_symbol_counts_equal_the_plain_definitions():
    import random

    from dataprep.steps.gopher_repetition import find_duplicates
    from dataprep.text import BULLETS, ELLIPSES, TextView, prepare_views

    rng = random.Random(5)
    pieces = ["word", "Ünï", "42", "-", "•", "—", "*x", "...", "…", "end.", "..", "....", "#", " ", "  ", "\t",
              "\u00a0", "\u2003", "\n", "\n", "\n\n", "\n\n\n", "\r\n", " \n ", "日本", "x...", "- y", ".", "##"]
    texts = ["", "\n", "\n\n", " \n\n ", "a\n\nb", "a\n\n\nb\n\na", "- a\n- a\n\n- a", "x...\n…\n\n\n x ...  \n"]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))) for _ in range(300)]
    docs = [Document(str(i), text, {"lang": rng.choice(["en", "zh", None])}) for i, text in enumerate(texts)]
    batch = prepare_views(docs)
    for doc, v in zip(docs, batch):
        stripped = [line.strip() for line in doc.text.split("\n") if line.strip()]
        paragraphs = TextView(doc.text, v.lang).paragraphs
        lines = [line for line in doc.text.split("\n") if line]
        expected = (len(stripped), sum(line.startswith(BULLETS) for line in stripped),
                    sum(line.endswith(ELLIPSES) for line in stripped),
                    (len(lines), *find_duplicates(lines)), (len(paragraphs), *find_duplicates(paragraphs)),
                    doc.text.count("#"), doc.text.count("...") + doc.text.count("…"))
        alone = TextView(doc.text, v.lang)
        for got in (v, alone):
            assert (got.nonempty_line_count, got.bullet_line_count, got.ellipsis_line_count, got.line_repeats,
                    got.paragraph_repeats, got.hash_count, got.ellipsis_count) == expected, repr(doc.text)


def test_sort_groups_orders_like_a_stable_argsort():
    import numpy as np

    from dataprep.steps.gopher_repetition import sort_groups

    rng = np.random.default_rng(3)
    cases = [np.array([5, 3, 5, 7, 4], dtype=np.uint64)]  # 4, 5 and 7 share their high bits: the argsort path
    for size in (1, 2, 17, 1000):
        distinct = rng.integers(0, 2**64, size=max(size // 3, 1), dtype=np.uint64, endpoint=False)
        cases.append(distinct[rng.integers(0, len(distinct), size=size)])
    cases += [rng.integers(0, 8, size=50).astype(np.uint64)]
    for keys in cases:
        order, same = sort_groups(keys)
        expected = np.argsort(keys, kind="stable")
        assert order.tolist() == expected.tolist()
        assert same.tolist() == (keys[expected][1:] == keys[expected][:-1]).tolist()


def test_the_bounded_top_profile_decides_as_the_exact_one():
    import random

    import numpy as np

    from dataprep.steps.gopher_repetition import NgramIndex

    rng = random.Random(13)
    docs = [[rng.choice(NOUNS[: rng.randint(2, 11)]) for _ in range(rng.randint(0, 150))] for _ in range(40)]
    words = [w for doc in docs for w in doc]
    index = {w: i for i, w in enumerate(dict.fromkeys(words))}
    ids = np.array([index[w] for w in words], dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    grams = NgramIndex(ids=ids, lengths=np.array([len(w) for w in words], dtype=np.int64),
                       bounds=np.cumsum([0] + [len(doc) for doc in docs]))
    lengths = np.array([max(len(" ".join(doc)), 1) for doc in docs])
    exact, (positions, keys, firsts) = grams.top_profile_per_doc()
    for limit in (0.0, 0.1, 0.18, 0.5):
        top, found = grams.bounded_top_profile_per_doc(lengths, limit)
        assert top[2] == exact[2] and top[4] == exact[4]
        for j in range(len(docs)):
            assert top[3][j] == exact[3][j] or (top[3][j] == 0 and exact[3][j] / lengths[j] <= limit)
        assert [a.tolist() for a in found] == [positions.tolist(), keys.tolist(), firsts.tolist()]


def test_filters_batch_by_count_and_by_characters_with_the_same_decisions():
    from dataprep.step import batched

    docs = [Document(str(i), "x" * length) for i, length in enumerate([10, 10, 10, 500, 10, 10, 300, 10])]
    assert [len(b) for b in batched(docs, 4)] == [4, 4]
    # a batch ends at the document that brings it to 400 characters, or at 4 documents
    assert [[d.id for d in b] for b in batched(docs, 4, 400)] == [["0", "1", "2", "3"], ["4", "5", "6", "7"]]
    assert [len(b) for b in batched(docs, 8, 100)] == [4, 3, 1]

    texts = [ENGLISH, ENGLISH_OTHER, PERSIAN, POLISH, "", ENGLISH[:200], "word " * 40] * 5
    decisions = []
    for size, chars in ((1, None), (256, 1 << 17), (3, 700)):
        removed = {}
        quality = GopherQuality(QualityConfig(), lambda d, reason: removed.__setitem__(d.id, reason))
        repetition = GopherRepetition(RepetitionConfig(), lambda d, reason: removed.__setitem__(d.id, reason))
        for step in (quality, repetition):
            step.batch_size, step.batch_chars = size, chars
        kept = [d.id for d in repetition.run(quality.run(
            Document(str(i), t, {"lang": lang}) for i, (t, lang) in enumerate(zip(texts, ["en", "en", "fa", "pl"] * 9))))]
        decisions.append((kept, removed))
    assert decisions[0] == decisions[1] == decisions[2]
    assert decisions[0][0] and decisions[0][1]  # some kept, some removed
