"""Tokenize stage: train a byte-level BPE on the corpus, split it by document, write token memmaps.

Output directory:
  train.bin, val.bin  every document's tokens followed by the end-of-text token (raw uint16/uint32,
                      read with np.memmap(path, dtype=meta["dtype"], mode="r"))
  tokenizer.json      Hugging Face tokenizers file
  meta.json           dtype, vocab size, eot id, tokens/documents/bytes per split, corpus path
  stats.json          the same counts plus tokenizer fertility (tokens per word) per language
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm import tqdm

from tokenmill.documents import Document, read_documents
from tokenmill.errors import UserError
from tokenmill.stage import StageStats, atomic_directory, write_json
from training.config import TokenizeConfig

SPLITS = ("train", "val")


def is_validation(doc_id: str, config: TokenizeConfig) -> bool:
    """The split of a document is a pure function of its id: stable as the corpus grows."""
    digest = hashlib.sha256(f"{config.seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < config.val_fraction


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def train_tokenizer(texts: Iterator[str], config: TokenizeConfig) -> Tokenizer:
    """Byte-level BPE (GPT-2 style): every string round-trips exactly, whatever its script."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=[config.eot_token],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    # A document that contains the literal "<|endoftext|>" is text, not a document boundary.
    tokenizer.encode_special_tokens = True
    return tokenizer


def tokenize(corpus: Path, out: Path, config: TokenizeConfig) -> dict:
    """Train the tokenizer on the training documents of `corpus`, then write the token files to `out`."""
    corpus, out = Path(corpus), Path(out)
    tokenizer = train_tokenizer(
        (d.text for d in read_documents(corpus) if not is_validation(d.id, config)), config
    )
    eot = tokenizer.token_to_id(config.eot_token)
    vocab_size = tokenizer.get_vocab_size()
    dtype = token_dtype(vocab_size)
    with atomic_directory(out) as tmp:
        counts = _encode_corpus(corpus, tokenizer, eot, dtype, tmp, config)
        for split in SPLITS:
            if counts[split]["documents"] == 0:
                raise UserError(f"{corpus}: no documents fell into the {split} split "
                                f"(tokenize.val_fraction is {config.val_fraction}; add documents or change it)")
        tokenizer.save(str(tmp / "tokenizer.json"))
        meta = {
            "corpus": corpus.as_posix(),
            "dtype": dtype.name,
            "eot_id": eot,
            "eot_token": config.eot_token,
            "vocab_size": vocab_size,
            **{split: {k: counts[split][k] for k in ("tokens", "documents", "bytes")} for split in SPLITS},
        }
        write_json(tmp / "meta.json", meta)
        stats = _stats(counts, meta)
        stats.write(tmp)
    return {**meta, "fertility": stats.extra["fertility"]}


def _encode_corpus(corpus: Path, tokenizer: Tokenizer, eot: int, dtype: np.dtype, out: Path,
                   config: TokenizeConfig) -> dict:
    """Append each document's tokens + eot to its split's .bin; count tokens, words and bytes."""
    counts = {s: {"tokens": 0, "documents": 0, "bytes": 0, "by_lang": defaultdict(lambda: [0, 0])}
              for s in SPLITS}
    files = {s: open(out / f"{s}.bin", "wb") for s in SPLITS}
    try:
        batch: list[Document] = []
        for doc in tqdm(read_documents(corpus), desc="tokenize", unit="doc", file=sys.stderr):
            batch.append(doc)
            if len(batch) >= config.encode_batch:
                _write_batch(batch, tokenizer, eot, dtype, files, counts, config)
                batch = []
        _write_batch(batch, tokenizer, eot, dtype, files, counts, config)
    finally:
        for f in files.values():
            f.close()
    return counts


def _write_batch(docs: list[Document], tokenizer: Tokenizer, eot: int, dtype: np.dtype, files: dict,
                 counts: dict, config: TokenizeConfig) -> None:
    if not docs:
        return
    encodings = tokenizer.encode_batch([d.text for d in docs])
    for doc, encoding in zip(docs, encodings):
        split = "val" if is_validation(doc.id, config) else "train"
        ids = np.asarray(encoding.ids + [eot], dtype=dtype)
        ids.tofile(files[split])
        c = counts[split]
        c["tokens"] += len(ids)
        c["documents"] += 1
        c["bytes"] += doc.nbytes
        words = len(doc.text.split())  # whitespace words: a ZWNJ inside a Persian word does not split it
        for lang in ("all", str(doc.meta.get("lang") or "unknown")):
            c["by_lang"][lang][0] += len(encoding.ids)
            c["by_lang"][lang][1] += words


def _stats(counts: dict, meta: dict) -> StageStats:
    """stats.json: document/byte counts and fertility (tokens per whitespace word) per language."""
    merged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for split in SPLITS:
        for lang, (tokens, words) in counts[split]["by_lang"].items():
            merged[lang][0] += tokens
            merged[lang][1] += words
    fertility = {lang: round(t / w, 4) if w else None for lang, (t, w) in sorted(merged.items())}
    documents = sum(counts[s]["documents"] for s in SPLITS)
    nbytes = sum(counts[s]["bytes"] for s in SPLITS)
    return StageStats(
        stage="tokenize",
        documents_in=documents,
        bytes_in=nbytes,
        documents_out=documents,
        bytes_out=sum(counts[s]["tokens"] for s in SPLITS) * np.dtype(meta["dtype"]).itemsize,
        extra={
            "vocab_size": meta["vocab_size"],
            "dtype": meta["dtype"],
            "splits": {s: meta[s] for s in SPLITS},
            "fertility": fertility,
            "bytes_per_token": round(nbytes / max(1, meta["train"]["tokens"] + meta["val"]["tokens"]), 4),
        },
    )


def load_tokenizer(path: Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: tokenizer file not found (run the tokenize stage first)")
    return Tokenizer.from_file(str(path))


def token_byte_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """UTF-8 byte length of every token id: byte-level tokens map one character to one byte;
    special tokens (end-of-text) stand for no text and count 0 bytes."""
    lengths = np.zeros(tokenizer.get_vocab_size(), dtype=np.int64)
    special = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
    for token, idx in tokenizer.get_vocab().items():
        lengths[idx] = 0 if token in special else len(token)
    return lengths


def read_meta(tokens: Path) -> dict:
    """tokens/meta.json, with a one-line error when the tokenize stage has not been run."""
    path = Path(tokens) / "meta.json"
    if not path.is_file():
        raise UserError(f"{path}: not found (run the tokenize stage first)")
    return json.loads(path.read_text(encoding="utf-8"))


def read_tokens(tokens: Path, split: str, meta: dict) -> np.memmap:
    path = Path(tokens) / f"{split}.bin"
    if not path.is_file():
        raise UserError(f"{path}: not found (run the tokenize stage first)")
    return np.memmap(path, dtype=np.dtype(meta["dtype"]), mode="r")
