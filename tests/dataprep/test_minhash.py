import numpy as np
import pytest

from dataprep.dedup import NearDedup, NearDedupConfig
from dataprep.minhash import MinHasher, band_edges, band_keys, jaccard
from tokenmill.documents import Document


def pair_texts(rng, size, shared, pool):
    """Two texts of `size` distinct words each, `shared` of them in common (Jaccard shared/(2 size-shared))."""
    words = rng.choice(pool, 2 * size - shared, replace=False)
    return " ".join(words[:size]), " ".join(words[size - shared :])


def test_detection_follows_the_lsh_s_curve():
    """P(a pair is a candidate) = 1 - (1 - s^8)^14 for Jaccard s, within ±0.05 (600 pairs per level)."""
    config = NearDedupConfig(ngram_size=1, min_jaccard=0.0)
    step = NearDedup(config)
    rng = np.random.default_rng(0)
    pool = np.array([f"w{i}" for i in range(20_000)])
    size, pairs = 60, 600
    for shared in (30, 45, 50, 54, 57, 59):  # Jaccard 0.33, 0.60, 0.71, 0.82, 0.90, 0.97
        texts = [t for _ in range(pairs) for t in pair_texts(rng, size, shared, pool)]
        signatures = step.sign([Document(str(i), t) for i, t in enumerate(texts)])
        members, firsts = step.candidate_edges(signatures)
        found = {(min(a, b), max(a, b)) for a, b in zip(members.tolist(), firsts.tolist())}
        detected = sum((2 * i, 2 * i + 1) in found for i in range(pairs)) / pairs
        s = shared / (2 * size - shared)
        expected = 1 - (1 - s**config.rows) ** config.bands
        assert abs(detected - expected) <= 0.05, (s, detected, expected)


def test_signatures_estimate_jaccard_without_bias():
    hasher = MinHasher(num_perm=256, ngram_size=1, seed=3)
    rng = np.random.default_rng(1)
    pool = np.array([f"t{i}" for i in range(5000)])
    errors = []
    for shared in range(10, 100, 10):
        a, b = pair_texts(rng, 100, shared, pool)
        sa, sb = hasher.sign([a, b])
        errors.append(np.mean(sa == sb) - jaccard(hasher.shingle_set(a), hasher.shingle_set(b)))
    assert abs(np.mean(errors)) < 0.02 and max(map(abs, errors)) < 0.1


def test_signing_does_not_depend_on_batching_order_or_process_state():
    texts = ["The cat sat on the mat and looked out of the window.", "", "one two", "word " * 3000, "a b c d e f"]
    one = MinHasher(112, 5, 1).sign(texts)
    fresh = MinHasher(112, 5, 1)
    separately = np.concatenate([fresh.sign([t]) for t in reversed(texts)])[::-1]
    assert one.dtype == np.uint32 and one.shape == (5, 112)
    assert np.array_equal(one, separately)
    assert not np.array_equal(one[0], MinHasher(112, 5, 2).sign(texts[:1])[0])  # the seed matters


def test_short_texts_are_one_shingle_and_empty_texts_match_each_other():
    hasher = MinHasher(112, 5, 1)
    sig = hasher.sign(["Hello world", "hello, WORLD!", "", "  "])
    assert np.array_equal(sig[0], sig[1]) and np.array_equal(sig[2], sig[3])
    assert not np.array_equal(sig[0], sig[2])


def test_band_edges_join_each_run_to_its_first_member_without_pairs():
    keys = np.array([5, 3, 5, 9, 5, 3], dtype=np.uint64)
    members, firsts = band_edges(keys)
    assert sorted(zip(members.tolist(), firsts.tolist())) == [(2, 0), (4, 0), (5, 1)]


def test_band_keys_differ_between_bands_for_equal_values():
    signatures = np.ones((2, 8), dtype=np.uint32)
    keys = band_keys(signatures, bands=2, rows=4)
    assert keys[0, 0] == keys[1, 0] and keys[0, 0] != keys[0, 1]


@pytest.mark.parametrize("num_perm", [7, 112])
def test_large_batches_are_signed_in_chunks_like_single_documents(monkeypatch, num_perm):
    import dataprep.minhash as minhash

    texts = [" ".join(f"w{i % 97} x{i}" for i in range(n)) for n in (1, 40, 300, 7)]
    whole = MinHasher(num_perm, 3, 9).sign(texts)
    monkeypatch.setattr(minhash, "CHUNK_VALUES", num_perm * 5)  # 5 shingles per chunk: documents span chunks
    assert np.array_equal(MinHasher(num_perm, 3, 9).sign(texts), whole)


def test_words_are_re_word_runs_of_the_lower_cased_text_in_any_script():
    from dataprep.minhash import words

    hasher = MinHasher(112, 2, 1)
    texts = ["İstanbul İSTANBUL straße ΣΊΣΥΦΟΣ", "a_b c-d e’f «g» 東京、大阪。", "دبیان، یک سیستم‌عامل ۱۹۹۳",
             "Zażółć gęślą jaźń!", "tabs\tand\nlines  x\x00y", "🙂 emoji 🙂 и кириллица"]
    for text in texts:  # the signature depends only on the sequence of `\w+` words
        assert np.array_equal(hasher.sign([text]), hasher.sign([" ".join(words(text))])), text
    assert not np.array_equal(hasher.sign(["straße a"]), hasher.sign(["strasse a"]))


def test_a_batch_with_texts_that_grow_when_lower_cased_signs_like_each_text_alone():
    texts = ["İstanbul İzmir a b c d e", "plain words here and there", "ΣΊΣΥΦΟΣ Σ ΑΣ", "x\x00y İ z w v u", "tail"]
    hasher = MinHasher(112, 2, 1)
    alone = np.concatenate([hasher.sign([t]) for t in texts])
    assert np.array_equal(hasher.sign(texts), alone)  # with a NUL inside a text
    assert np.array_equal(hasher.sign(texts[:3] + texts[4:]), np.delete(alone, 3, axis=0))  # bounds from the NULs


def test_the_lower_case_word_table_is_str_lower_and_re_word_for_every_bmp_character():
    import re

    from dataprep.minhash import _SPECIAL, bmp_lower_table

    table = bmp_lower_table()
    for code in range(0x10000):
        low = chr(code).lower()
        if table[code] == _SPECIAL:
            assert len(low) != 1 or code == 0x03A3
        else:
            assert table[code] == (ord(low) if re.fullmatch(r"\w", low) else 0), hex(code)


def test_a_text_longer_than_the_kept_powers_hashes_alike_and_leaves_no_large_tables(monkeypatch):
    """Power tables are kept up to POWERS_KEPT entries; a longer text gets tables of its own for the
    call, with the same word hashes as in a short text (the kept tables do not grow with the longest text)."""
    from dataprep import minhash

    monkeypatch.setattr(minhash, "POWERS_KEPT", 1 << 10)
    monkeypatch.setattr(minhash, "_powers", np.ones(1, dtype=np.uint64))
    monkeypatch.setattr(minhash, "_inverse_powers", np.ones(1, dtype=np.uint64))
    words = [f"wort{i % 97}x" for i in range(2000)]  # ~16,000 characters
    long_hashes, _ = minhash.word_hashes([" ".join(words)])
    short_hashes, _ = minhash.word_hashes([" ".join(words[:50])])
    assert len(minhash._powers) <= 1 << 10 and len(minhash._inverse_powers) <= 1 << 10
    assert len(long_hashes) == 2000
    assert long_hashes[:50].tolist() == short_hashes.tolist()
    assert len(set(long_hashes.tolist())) == 97
