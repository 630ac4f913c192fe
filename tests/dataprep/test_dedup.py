import random

from dataprep_samples import ENGLISH, ENGLISH_OTHER, PERSIAN, POLISH

from dataprep.config import ExactDedupConfig, NearDedupConfig
from dataprep.dedup import ExactDedup, NearDedup
from tokenmill.documents import Document


def dedup(step_class, config, docs):
    """(kept ids, {removed id: (reason, duplicate_of)}, step)."""
    removed = {}
    step = step_class(config, on_remove=lambda d, r: removed.__setitem__(d.id, (r, d.meta["duplicate_of"])))
    kept = [d.id for d in step.run(docs)]
    return kept, removed, step


def with_words_changed(text, changes):
    words = text.split(" ")
    for position, word in changes:
        words[position] = word
    return " ".join(words)


def test_exact_duplicates_keep_one_and_name_it():
    docs = [
        Document("b", ENGLISH, {"url": "http://b"}),
        Document("a", ENGLISH),
        Document("c", PERSIAN),
        Document("d", ENGLISH.upper().replace(". ", ".\t")),  # same text, other case and spacing
        Document("e", PERSIAN + "\n\n\n"),  # longer only by spacing: kept
    ]
    kept, removed, step = dedup(ExactDedup, ExactDedupConfig(), docs)
    assert kept == ["a", "e"]  # equal lengths: the smallest id wins; input order is kept
    assert removed == {"b": ("exact_dedup", "a"), "c": ("exact_dedup", "e"), "d": ("exact_dedup", "a")}
    assert step.cluster_sizes == {3: 1, 2: 1}
    assert step.stats() == {"documents_in": 5, "documents_out": 2, "removed": {"exact_dedup": 3}}


def test_exact_dedup_can_compare_raw_text():
    docs = [Document("a", ENGLISH), Document("b", ENGLISH.upper())]
    kept, removed, _ = dedup(ExactDedup, ExactDedupConfig(normalize_text=False), docs)
    assert kept == ["a", "b"] and removed == {}


def test_near_duplicate_with_a_few_words_changed_is_removed_a_different_document_kept():
    page = ENGLISH + "\n\n" + ENGLISH_OTHER  # about 210 words
    near = with_words_changed(page, [(3, "libre"), (70, "many"), (150, "quickly")])
    docs = [Document("orig", page), Document("copy", near), Document("other", ENGLISH_OTHER),
            Document("fa", PERSIAN), Document("pl", POLISH)]
    kept, removed, step = dedup(NearDedup, NearDedupConfig(), docs)
    longer = "copy" if len(near) > len(page) else "orig"
    shorter = ({"copy", "orig"} - {longer}).pop()
    assert sorted(kept) == sorted([longer, "other", "fa", "pl"])
    assert removed == {shorter: ("near_dedup", longer)}
    assert step.cluster_sizes == {2: 1}


def test_near_dedup_keeps_the_longest_then_smallest_id_whatever_the_input_order():
    base = ENGLISH_OTHER
    variants = {
        "v1": base,
        "v2": base + " It rained.",  # the longest: kept
        "v3": with_words_changed(base, [(5, "town"), (30, "wall")]),
        "v0": base,  # same length as v1: the smaller id wins among equals
        "x": ENGLISH,
    }
    expected_kept = {"v2", "x"}
    for seed in range(5):
        items = list(variants.items())
        random.Random(seed).shuffle(items)
        kept, removed, _ = dedup(NearDedup, NearDedupConfig(), [Document(i, t) for i, t in items])
        assert set(kept) == expected_kept
        assert {k: v[1] for k, v in removed.items()} == {"v1": "v2", "v3": "v2", "v0": "v2"}
        assert kept == [i for i, _ in items if i in expected_kept]  # order of the input is kept


def test_near_dedup_tie_on_length_goes_to_the_smallest_id():
    docs = [Document("z", ENGLISH_OTHER), Document("m", ENGLISH_OTHER.replace("river", "rivers", 1)[:-1])]
    kept, removed, _ = dedup(NearDedup, NearDedupConfig(), docs)
    assert kept == ["m"] and removed == {"z": ("near_dedup", "m")}


def test_short_documents_are_compared_whole():
    docs = [Document("a", "Hello world"), Document("b", "hello, world!"), Document("c", "Goodbye world")]
    kept, removed, _ = dedup(NearDedup, NearDedupConfig(), docs)
    assert kept == ["b", "c"] and removed == {"a": ("near_dedup", "b")}  # the longer one stays


def test_near_dedup_is_deterministic_for_a_seed():
    docs = [Document(f"d{i}", ENGLISH_OTHER + f" Note {i}.") for i in range(4)]
    first = dedup(NearDedup, NearDedupConfig(seed=7), docs)[:2]
    second = dedup(NearDedup, NearDedupConfig(seed=7), [Document(d.id, d.text) for d in docs])[:2]
    assert first == second
