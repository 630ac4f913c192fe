"""tokenize in parallel and after a crash: the same token files for 1 and N workers and for a rerun that
continues from the chunks it encoded; the tokenizer trains on a bounded sample of the corpus."""

import pytest

import training.tokenizer as tokenizer_module
from tokenmill.documents import Document, ShardWriter
from training.config import TokenizeConfig
from training.tokenizer import tokenize, training_texts

WORDS = ["river", "bridge", "market", "harbour", "ship", "lighthouse", "rzeka", "most", "رودخانه", "پل", "city"]


@pytest.fixture
def corpus(tmp_path):
    with ShardWriter(tmp_path / "corpus", shard_size=40) as writer:
        for i in range(120):
            text = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(30 + i % 17))
            writer.write(Document(f"doc-{i:03d}", text, {"source": "s" + str(i % 3), "lang": ["en", "pl", "fa"][i % 3]}))
    return tmp_path / "corpus"


def tree_bytes(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


CONFIG = dict(vocab_size=300, val_fraction=0.2)


def test_two_workers_write_the_bytes_of_one_and_a_crash_resumes_from_its_chunks(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(tokenizer_module, "CHUNK_DOCUMENTS", 16)  # 8 chunks
    tokenize(corpus, tmp_path / "one", TokenizeConfig(**CONFIG))
    tokenize(corpus, tmp_path / "two", TokenizeConfig(**CONFIG, workers=2))
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")

    encode = tokenizer_module.encode_chunk
    calls = []

    def crash_after_three(*args):
        calls.append(args[3])
        if len(calls) > 3:
            raise KeyboardInterrupt  # as a kill would, mid-run
        return encode(*args)

    monkeypatch.setattr(tokenizer_module, "encode_chunk", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        tokenize(corpus, tmp_path / "resumed", TokenizeConfig(**CONFIG))
    work = tmp_path / ".resumed.tokenize-work"
    assert len(list(work.glob("chunk-*.npz"))) == 3 and (work / "tokenizer.json").exists()
    calls.clear()
    monkeypatch.setattr(tokenizer_module, "encode_chunk", lambda *args: calls.append(args[3]) or encode(*args))
    tokenize(corpus, tmp_path / "resumed", TokenizeConfig(**CONFIG))
    assert len(calls) == 5  # the three finished chunks were not encoded again
    assert tree_bytes(tmp_path / "resumed") == tree_bytes(tmp_path / "one")
    assert not work.exists()


def test_the_tokenizer_trains_on_a_bounded_sample(corpus):
    everything = sum(len(t.encode()) for t in training_texts(corpus, TokenizeConfig(**CONFIG), None))
    sample = sum(len(t.encode()) for t in training_texts(corpus, TokenizeConfig(**CONFIG, train_sample_bytes=everything // 4), None))
    assert everything // 8 < sample < everything // 2
