import random

from dataprep_samples import ENGLISH, ENGLISH_OTHER, PERSIAN, POLISH

import numpy as np
import pytest

from dataprep.dedup import ExactDedup, ExactDedupConfig, NearDedup, NearDedupConfig
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
    assert step.stats() == {"documents_in": 5, "documents_out": 2, "removed": {"exact_dedup": 3}, "matched_index": 0}


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


def test_survivors_carry_cluster_id_and_size_across_both_steps():
    from dataprep.dedup import apply, resolve, sign_documents, texts_from

    docs = [Document("a", ENGLISH_OTHER), Document("b", ENGLISH_OTHER), Document("c", ENGLISH_OTHER + " It rained."),
            Document("x", ENGLISH)]
    steps = [ExactDedup(ExactDedupConfig()), NearDedup(NearDedupConfig())]
    decisions = resolve(steps, sign_documents(steps, docs), texts_from(docs))
    removed = {}
    kept = list(apply(decisions, 0, docs, lambda d, r: removed.__setitem__(d.id, (r, d.meta["duplicate_of"]))))
    assert [(d.id, d.meta["cluster_id"], d.meta["cluster_size"]) for d in kept] == [("c", "c", 3), ("x", "x", 1)]
    assert removed == {"b": ("exact_dedup", "c"), "a": ("near_dedup", "c")}  # b leads to c through a
    assert [s.stats()["removed"] for s in steps] == [{"exact_dedup": 1}, {"near_dedup": 1}]


def chain(length, width=100, shift=5):
    """Documents sliding over one word list: neighbours are near-duplicates, the ends share nothing."""
    words = [f"w{i}" for i in range(width + shift * length)]
    return [Document(f"c{i:03d}", " ".join(words[i * shift : i * shift + width])) for i in range(length)]


def exact_jaccard(a: Document, b: Document) -> float:
    x, y = set(a.text.split()), set(b.text.split())
    return len(x & y) / len(x | y)


def test_a_chain_of_near_duplicates_is_split_so_each_removed_document_matches_its_survivor():
    docs = chain(60)  # one connected component: neighbours share 90 of 100 words, the ends nothing
    kept, removed, step = dedup(NearDedup, NearDedupConfig(ngram_size=1), docs)
    assert step.chains["split"] == 1 and step.chains["centres_added"] == len(kept) - 1
    assert 8 <= len(kept) <= 20  # each survivor stands for its close neighbours only
    by_id = {d.id: d for d in docs}
    for doc_id, (_, survivor) in removed.items():  # exact checks near the threshold, estimates beyond it
        assert exact_jaccard(by_id[doc_id], by_id[survivor]) >= 0.6


def test_with_a_wide_margin_every_decision_is_exact():
    docs = chain(60)
    kept, removed, step = dedup(NearDedup, NearDedupConfig(ngram_size=1, exact_margin=0.49), docs)
    by_id = {d.id: d for d in docs}
    assert step.chains["exact_checks"] > len(removed)
    assert all(exact_jaccard(by_id[i], by_id[s]) >= 0.7 for i, (_, s) in removed.items())
    for i, a in enumerate(kept):  # and no two kept documents reach the threshold
        assert all(exact_jaccard(by_id[a], by_id[b]) < 0.7 for b in kept[:i])


def test_a_large_cluster_of_real_copies_is_not_split():
    docs = [Document(f"p{i:03d}", ENGLISH_OTHER + (" Extra." if i == 7 else "")) for i in range(60)]
    kept, removed, step = dedup(NearDedup, NearDedupConfig(), docs)
    assert kept == ["p007"] and len(removed) == 59 and step.chains == {}


def test_dedup_needs_documents_it_can_read_twice():
    with pytest.raises(TypeError, match="read twice"):
        list(NearDedup(NearDedupConfig()).run(iter([Document("a", "x")])))


def test_state_memory_per_document_is_bounded_by_the_signature():
    from dataprep.dedup import sign_documents

    steps = [ExactDedup(ExactDedupConfig()), NearDedup(NearDedupConfig())]
    short = sign_documents(steps, [Document(f"doc-{i:05d}", "a b c") for i in range(500)])
    long = sign_documents(steps, [Document(f"doc-{i:05d}", ENGLISH * 20) for i in range(500)])
    assert short.bytes_per_document() == long.bytes_per_document() < 16 + 448 + 8 + 80


def test_components_are_numbered_by_their_smallest_member_and_join_long_chains():
    from dataprep.dedup import components

    edges = np.array([[5, 1], [1, 3], [4, 2], [7, 7]])
    assert components(8, edges[:, 0], edges[:, 1]).tolist() == [0, 1, 2, 1, 2, 1, 3, 4]
    assert components(3, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)).tolist() == [0, 1, 2]
    order = np.random.default_rng(0).permutation(50_000)  # one chain through every node, shuffled
    assert not components(50_000, order[:-1], order[1:]).any()
