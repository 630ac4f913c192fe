import json

import numpy as np
import pytest

from tokenmill.documents import read_documents
from tokenmill.errors import UserError
from training.config import TokenizeConfig
from training.tokenizer import is_validation, load_tokenizer, token_byte_lengths, token_dtype, tokenize

SAMPLES = [
    "The year 2024: 3.14159, naïve café — “quoted”.\n\tIndented line.",
    "می‌خواهم به خانه‌ام بروم؛ ساعت ۱۲:۴۵ است و ٣٤٥ تومان دارم.",  # ZWNJ, Persian and Arabic-Indic digits
    "Zażółć gęślą jaźń. ŹDŹBŁO 1 234,56 zł",
    "a<|endoftext|>b",  # the special token's text inside a document stays text
]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_exact(tokens, text):
    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    tokenizer.encode_special_tokens = True
    assert tokenizer.decode(tokenizer.encode(text).ids, skip_special_tokens=False) == text


def test_memmaps_hold_each_document_then_eot_split_by_document(corpus, tokens, tokenize_config):
    meta = json.loads((tokens / "meta.json").read_text())
    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    assert meta["dtype"] == "uint16" and meta["eot_id"] == tokenizer.token_to_id("<|endoftext|>")
    docs = list(read_documents(corpus))
    for split in ("train", "val"):
        expected = [d for d in docs if is_validation(d.id, tokenize_config) == (split == "val")]
        ids = np.memmap(tokens / f"{split}.bin", dtype=np.uint16, mode="r")
        assert len(ids) == meta[split]["tokens"] and meta[split]["documents"] == len(expected) > 0
        assert ids[-1] == meta["eot_id"] and int((ids == meta["eot_id"]).sum()) == len(expected)
        pieces = np.split(np.asarray(ids), np.flatnonzero(ids == meta["eot_id"]) + 1)[:-1]
        assert [tokenizer.decode(p[:-1].tolist()) for p in pieces] == [d.text for d in expected]
        assert meta[split]["bytes"] == sum(d.nbytes for d in expected)


def test_stats_report_fertility_per_language(tokens):
    stats = json.loads((tokens / "stats.json").read_text())
    assert set(stats["fertility"]) == {"all", "en", "fa", "pl"}
    assert all(1.0 <= value < 10 for value in stats["fertility"].values())


def test_tokenize_is_deterministic(corpus, tokens, tokenize_config, tmp_path):
    again = tmp_path / "tokens"
    tokenize(corpus, again, tokenize_config)
    for name in ("tokenizer.json", "train.bin", "val.bin", "meta.json", "stats.json"):
        assert (again / name).read_bytes() == (tokens / name).read_bytes(), name


def test_empty_validation_split_is_a_user_error(corpus, tmp_path):
    with pytest.raises(UserError, match="no documents fell into the val split"):
        tokenize(corpus, tmp_path / "tokens", TokenizeConfig(vocab_size=300, val_fraction=1e-9))
    assert not (tmp_path / "tokens").exists()


def test_dtype_and_byte_lengths(tokens):
    assert token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    lengths = token_byte_lengths(tokenizer)
    assert lengths[tokenizer.token_to_id("<|endoftext|>")] == 0
    ids = tokenizer.encode("می‌خواهم 2024 żółw").ids
    assert lengths[ids].sum() == len("می‌خواهم 2024 żółw".encode("utf-8"))
