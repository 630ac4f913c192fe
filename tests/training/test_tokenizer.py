import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from tokenmill.config import build
from tokenmill.documents import Document, ShardWriter, read_documents
from tokenmill.errors import ConfigError, UserError
from training.config import TokenizeConfig
from training.tokenizer import (is_validation, load_tokenizer, read_documents_index, special_ids, token_byte_lengths,
                                token_dtype, tokenize, tokenizer_kind)

SAMPLES = [
    "The year 2024: 3.14159, naïve café — “quoted”.\n\tIndented line.",
    "می‌خواهم به خانه‌ام بروم؛ ساعت ۱۲:۴۵ است و ٣٤٥ تومان دارم.",  # ZWNJ, Persian and Arabic-Indic digits
    "Zażółć gęślą jaźń. ŹDŹBŁO 1 234,56 zł",
    "a<|endoftext|>b<|bos|>",  # the special tokens' text inside a document stays text
    "emoji 🦉 and a rare ideograph 龘",  # characters the char tokenizer never saw: UTF-8 bytes
]
KINDS = ("bpe", "char")


@pytest.fixture(scope="module")
def char_tokens(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("char") / "tokens"
    tokenize(corpus, out, TokenizeConfig(kind="char", vocab_size=400, val_fraction=0.2))
    return out


@pytest.fixture(params=KINDS)
def kind_tokens(request, tokens, char_tokens):
    return {"bpe": tokens, "char": char_tokens}[request.param]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_exact(kind_tokens, text):
    tokenizer = load_tokenizer(kind_tokens / "tokenizer.json")
    assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False).ids) == text


def test_saved_file_carries_special_token_behaviour(kind_tokens):
    # Read with the tokenizers library alone: nothing of ours sets a flag after loading.
    tokenizer = Tokenizer.from_file(str(kind_tokens / "tokenizer.json"))
    ids = special_ids(tokenizer)
    assert list(ids.values()) == [0, 1, 2, 3]
    encoded = tokenizer.encode("a<|endoftext|>b<|bos|><|pad|><|mask|>").ids
    assert encoded[0] == ids["bos"] and encoded[-1] == ids["eos"]  # encode adds BOS ... EOS
    assert not set(encoded[1:-1]) & set(ids.values())  # the literal text is never a special id
    assert tokenizer.decode(encoded[1:-1]) == "a<|endoftext|>b<|bos|><|pad|><|mask|>"


def test_char_tokenizer_is_one_token_per_known_character(char_tokens):
    tokenizer = load_tokenizer(char_tokens / "tokenizer.json")
    assert tokenizer_kind(tokenizer) == "char" and tokenizer.get_vocab_size() <= 400
    for text in ("Zażółć gęślą", "می‌خواهم"):
        assert tokenizer.encode(text, add_special_tokens=False).tokens == list(text)
    assert tokenizer.encode("🦉", add_special_tokens=False).tokens == ["<0xF0>", "<0x9F>", "<0xA6>", "<0x89>"]


def test_memmaps_hold_each_document_between_bos_and_eos_split_by_document(corpus, kind_tokens, tokenize_config):
    meta = json.loads((kind_tokens / "meta.json").read_text())
    tokenizer = load_tokenizer(kind_tokens / "tokenizer.json")
    assert meta["dtype"] == "uint16" and (meta["eot_id"], meta["bos_id"], meta["pad_id"], meta["mask_id"]) == (0, 1, 2, 3)
    docs = list(read_documents(corpus))
    for split in ("train", "val"):
        expected = [d for d in docs if is_validation(d.id, tokenize_config) == (split == "val")]
        ids = np.memmap(kind_tokens / f"{split}.bin", dtype=np.uint16, mode="r")
        assert len(ids) == meta[split]["tokens"] and meta[split]["documents"] == len(expected) > 0
        assert int((ids == meta["eot_id"]).sum()) == int((ids == meta["bos_id"]).sum()) == len(expected)
        assert not np.isin(ids, [meta["pad_id"], meta["mask_id"]]).any()
        index = read_documents_index(kind_tokens, split, meta)
        ranges = index["ranges"]
        assert ranges[0, 0] == 0 and ranges[-1, 1] == len(ids) and (ranges[1:, 0] == ranges[:-1, 1]).all()
        pieces = [np.asarray(ids[a:b]) for a, b in ranges]
        assert all(p[0] == meta["bos_id"] and p[-1] == meta["eot_id"] for p in pieces)
        assert [tokenizer.decode(p[1:-1].tolist()) for p in pieces] == [d.text for d in expected]
        assert index["lang"].tolist() == [d.meta["lang"] for d in expected]
        assert meta[split]["bytes"] == sum(d.nbytes for d in expected)
        assert sum(g["documents"] for g in meta[split]["by_lang"].values()) == len(expected)
        assert meta[split]["by_lang"]["fa"]["bytes"] == sum(d.nbytes for d in expected if d.meta["lang"] == "fa")


def test_documents_index_names_sources(tmp_path):
    with ShardWriter(tmp_path / "corpus", shard_size=10) as writer:
        for i in range(40):
            writer.write(Document(f"d{i}", f"text number {i} " * 5, {"lang": "en", "source": ["wiki", "news"][i % 2]}))
    meta = tokenize(tmp_path / "corpus", tmp_path / "tokens", TokenizeConfig(vocab_size=300, val_fraction=0.3))
    assert meta["sources"] == ["news", "wiki"]
    assert meta["documents_in"] == meta["documents_out"] == 40 and meta["bytes_in"] > 0  # what a flow logs
    index = read_documents_index(tmp_path / "tokens", "train", meta)
    assert set(index["source"]) == {"news", "wiki"}
    assert meta["train"]["by_source"]["wiki"]["documents"] == int((index["source"] == "wiki").sum())


def test_stats_report_fertility_per_language(kind_tokens):
    stats = json.loads((kind_tokens / "stats.json").read_text())
    assert set(stats["fertility"]) == {"all", "en", "fa", "pl"}
    low, high = (1.0, 10) if stats["kind"] == "bpe" else (4, 12)  # characters per word, plus a space
    assert all(low <= value < high for value in stats["fertility"].values()), stats["fertility"]


def test_tokenize_is_deterministic(corpus, tokens, tokenize_config, tmp_path):
    again = tmp_path / "tokens"
    tokenize(corpus, again, tokenize_config)
    for name in ("tokenizer.json", "train.bin", "val.bin", "meta.json", "stats.json", "val.docs.npy"):
        assert (again / name).read_bytes() == (tokens / name).read_bytes(), name


def test_an_existing_tokenizer_encodes_a_new_corpus_without_training(kind_tokens, tokenize_config, tmp_path):
    """A model's own tokenizer.json on a corpus it never saw (the champion's evaluation on a new corpus)."""
    new_corpus = tmp_path / "new"
    texts = [SAMPLES[i % len(SAMPLES)] + f" {i}" for i in range(40)]
    with ShardWriter(new_corpus) as writer:
        writer.write_all(Document(f"new-{i}", text, {"lang": "xx"}) for i, text in enumerate(texts))
    out = tmp_path / "tokens"
    tokenize(new_corpus, out, tokenize_config, tokenizer=kind_tokens / "tokenizer.json")
    assert (out / "tokenizer.json").read_bytes() == (kind_tokens / "tokenizer.json").read_bytes()
    meta = json.loads((out / "meta.json").read_text())
    original = json.loads((kind_tokens / "meta.json").read_text())
    assert (meta["kind"], meta["vocab_size"]) == (original["kind"], original["vocab_size"])
    tokenizer = load_tokenizer(kind_tokens / "tokenizer.json")
    val = np.fromfile(out / "val.bin", dtype=meta["dtype"])
    ranges = np.load(out / "val.docs.npy")
    first = next(t for i, t in enumerate(texts) if is_validation(f"new-{i}", tokenize_config))
    assert val[ranges[0, 0]:ranges[0, 1]].tolist() == tokenizer.encode(first).ids
    with pytest.raises(UserError, match="tokenizer file not found"):
        tokenize(new_corpus, tmp_path / "none", tokenize_config, tokenizer=tmp_path / "missing.json")


def test_empty_validation_split_is_a_user_error(corpus, tmp_path):
    with pytest.raises(UserError, match="no documents fell into the val split"):
        tokenize(corpus, tmp_path / "tokens", TokenizeConfig(vocab_size=300, val_fraction=1e-9))
    assert not (tmp_path / "tokens").exists()


def test_bad_tokenize_params_are_one_line_errors():
    with pytest.raises(ConfigError, match="params.yaml: tokenize: kind must be one of bpe, char"):
        build(TokenizeConfig, {"kind": "wordpiece"}, "params.yaml: tokenize")
    with pytest.raises(ConfigError, match="special tokens look like"):
        build(TokenizeConfig, {"bos_token": "BOS"}, "params.yaml: tokenize")


def test_dtype_and_byte_lengths(kind_tokens):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    tokenizer = load_tokenizer(kind_tokens / "tokenizer.json")
    lengths = token_byte_lengths(tokenizer)
    assert lengths[[0, 1, 2, 3]].tolist() == [0, 0, 0, 0]
    for text in ("می‌خواهم 2024 żółw", "🦉 <|endoftext|>"):
        ids = tokenizer.encode(text).ids  # with BOS and EOS
        assert lengths[ids].sum() == len(text.encode("utf-8"))
