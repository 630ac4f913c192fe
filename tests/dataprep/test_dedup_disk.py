"""Dedup out of core (dataprep/dedup_disk.py) must decide exactly what the in-memory `resolve` decides:
same removals, survivors, cluster sizes and counts, with many partitions, an index and the guard."""

import numpy as np
import pytest

from dataprep.dedup import (ExactDedup, ExactDedupConfig, IndexRows, NearDedup, NearDedupConfig, resolve,
                            sign_documents, texts_from)
from dataprep.dedup_disk import Numbering, partitions, resolve_on_disk, save_state, write_state
from tokenmill.documents import Document

WORDS = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ra") for b in range(300)]


def corpus(seed=0, originals=60):
    """Distinct documents; exact, near and case-changed copies; a sliding chain (a giant cluster to split)."""
    rng = np.random.default_rng(seed)
    docs = [Document(f"d{i:03d}", " ".join(rng.choice(WORDS, 80))) for i in range(originals)]
    for i in range(0, originals, 3):
        words = docs[i].text.split()
        docs.append(Document(f"x{i:03d}", docs[i].text.upper()))  # exact after normalisation
        words[40] = "changed"
        docs.append(Document(f"n{i:03d}", " ".join(words)))  # near, same length class
        docs.append(Document(f"m{i:03d}", " ".join(words[:-1])))  # near and shorter
    chain = [f"c{i}" for i in range(400)]
    docs += [Document(f"chain{i:02d}", " ".join(chain[i * 4 : i * 4 + 100])) for i in range(24)]
    order = rng.permutation(len(docs))
    return [docs[i] for i in order]


def steps(**near):
    return [ExactDedup(ExactDedupConfig(partition_bytes=4096)),
            NearDedup(NearDedupConfig(ngram_size=2, partition_bytes=4096, **near))]


def counts(step_list):
    return [(s.stats(), sorted(s.cluster_sizes.items())) for s in step_list]


def on_disk(group, shards, tmp_path, index_states=()):
    states = [write_state(group, shard, tmp_path / f"state-{n}") for n, shard in enumerate(shards)]
    flat = [d for shard in shards for d in shard]
    listed = resolve_on_disk(group, states + list(index_states), texts_from(flat),
                             lambda fn, args, desc: [fn(*a) for a in args], tmp_path / "work")
    decided, start = {}, 0
    for shard, decisions in zip(shards, listed):
        for row, doc_id, by, survivor, size in zip(decisions.rows.tolist(), decisions.ids, decisions.removed_by.tolist(),
                                                   decisions.survivor, decisions.cluster_size.tolist()):
            assert shard[row].id == doc_id
            if (by, survivor, size) != (-1, doc_id, 1):  # listed, but decided as an unlisted one is
                decided[doc_id] = (by, survivor, size)
        start += len(shard)
    return decided, states


def in_memory(group, docs, index=None):
    decisions = resolve(group, sign_documents(group, docs), texts_from(docs), index)
    return {i: (int(by), s, int(size) if by < 0 else 0)
            for i, by, s, size in zip(decisions.ids, decisions.removed_by, decisions.survivor, decisions.cluster_size)
            if by >= 0 or s != i or size != 1}


@pytest.mark.parametrize("near", [{}, {"min_jaccard": 0.0}])
def test_many_partitions_decide_what_memory_decides(tmp_path, near):
    docs = corpus()
    shards = [docs[i : i + 30] for i in range(0, len(docs), 30)]
    memory_steps, disk_steps = steps(**near), steps(**near)
    expected = in_memory(memory_steps, docs)
    decided, states = on_disk(disk_steps, shards, tmp_path)
    assert decided == expected
    assert counts(disk_steps) == counts(memory_steps)
    assert disk_steps[1].chains["split"] >= 1 and len(expected) > 50  # chains split and real duplicates at work
    numbering = Numbering.of(states, "near_dedup")
    assert len(partitions(disk_steps[1], numbering)) >= 3 * disk_steps[1].config.bands  # several key ranges a band


def test_an_index_of_earlier_batches_decides_as_in_memory(tmp_path):
    docs = corpus(seed=1)
    earlier, batch = docs[:100], docs[100:]
    recorded = steps()
    signed = sign_documents(recorded, earlier)
    index, states = {}, []
    for n, step in enumerate(recorded):
        rows = IndexRows(signed.ids, signed.length_array(), signed.signature_array(step.name))
        index[step.name] = rows
    states.append(save_state(recorded, tmp_path / "index", signed.ids, signed.length_array(),
                             {s.name: signed.signature_array(s.name) for s in recorded}, new=False))
    memory_steps, disk_steps = steps(), steps()
    expected = in_memory(memory_steps, batch, index)
    decided, _ = on_disk(disk_steps, [batch[:40], batch[40:]], tmp_path, states)
    assert decided == expected
    assert counts(disk_steps) == counts(memory_steps)
    assert disk_steps[0].matched_index + disk_steps[1].matched_index > 10


def test_state_arrays_load_as_numpy_saved_them_also_when_rewritten(tmp_path):
    from dataprep.dedup_disk import load

    arrays = {"sig": np.arange(24, dtype=np.uint32).reshape(6, 4), "lengths": np.array([3, 1, 2], dtype=np.int64),
              "empty": np.zeros((0, 4), dtype=np.uint64), "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
              "ids": np.frombuffer("ab\u200cé".encode(), dtype=np.uint8)}
    for name, array in arrays.items():
        np.save(tmp_path / f"{name}.npy", array)
        loaded = load(str(tmp_path), name)
        assert loaded.dtype == array.dtype and loaded.shape == array.shape and np.array_equal(loaded, array)
        assert not loaded.flags.writeable
    np.save(tmp_path / "sig.npy", np.arange(10, dtype=np.int16))  # the same file written again, other shape
    assert np.array_equal(load(str(tmp_path), "sig"), np.arange(10, dtype=np.int16))
