"""Tokenize stage: train a tokenizer on the corpus, split it by document, write token memmaps.

Two kinds (`tokenize.kind`):
  bpe   byte-level BPE (GPT-2 style): every string round-trips exactly, whatever its script
  char  one token per character seen at least `min_frequency` times in training text (most frequent
        first, up to vocab_size); any other character is written as its UTF-8 bytes (<0xNN> tokens)
Both have the special tokens EOS (`eot_token`, id 0), BOS (1), PAD (2) and MASK (3).

The special-token behaviour lives in tokenizer.json itself, so any `Tokenizer.from_file` reader gets it:
  - `encode(text)` gives BOS + text + EOS (a TemplateProcessing post-processor);
    `encode(text, add_special_tokens=False)` gives the text alone;
  - the special tokens are vocabulary entries, not "added tokens": text is never matched against them,
    so a document containing the literal "<|endoftext|>" is encoded as that text, never as the EOS id.

The validation split is the evaluation set when one is given (`eval_set`, training/evalset.py: the same
documents for every corpus version; corpus copies of them, by id or text, are left out of training), else
the documents whose id hashes below `val_fraction`.

Output directory:
  train.bin, val.bin  every document as BOS, its tokens, EOS (raw uint16/uint32, read with
                      np.memmap(path, dtype=meta["dtype"], mode="r"))
  <split>.docs.npy    int64 (documents, 2): [start, end) token offsets of each document in <split>.bin
  <split>.source.npy  int16 index into meta["sources"] of each document (doc.meta["source"], else "unknown")
  <split>.lang.npy    int16 index into meta["langs"] of each document (doc.meta["lang"], else "unknown")
  tokenizer.json      Hugging Face tokenizers file
  meta.json           kind, dtype, vocab size, special ids, sources, langs, eval_set (its path, digest and the
                      corpus documents left out as its copies, or null); per split: tokens, documents and
                      bytes overall, "by_source" and "by_lang"
  stats.json          the same counts plus fertility (tokens per whitespace word, specials excluded) per language
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import re
import shutil
from collections import Counter, defaultdict, deque
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from tokenmill.documents import Document, document_files, read_documents
from tokenmill.errors import UserError
from tokenmill.progress import progress
from tokenmill.stage import StageStats, atomic_directory, file_identity, work_directory, write_json
from training.config import TokenizeConfig
from training.evalset import EvalDocuments, id_rank, load_evalset

SPLITS = ("train", "val")
UNKNOWN = "unknown"
SPECIAL_TOKEN = re.compile(r"<\|[a-z_]+\|>")  # the form TokenizeConfig requires of special tokens
BYTE_TOKEN = re.compile(r"<0x[0-9A-F]{2}>")  # the char tokenizer's byte fallback
CHUNK_DOCUMENTS = 4096  # documents encoded as one piece: a worker's task, and what a rerun after a kill skips
SAMPLE_SALT = 7919  # the training sample's id hash differs from the validation split's


def is_validation(doc_id: str, config: TokenizeConfig) -> bool:
    """Without an evaluation set, the split of a document is a pure function of its id: stable as the corpus grows."""
    return id_rank(doc_id, config.seed) < config.val_fraction


def split_documents(corpus: Path, config: TokenizeConfig, eval_set: EvalDocuments | None,
                    excluded: Counter | None = None) -> Iterator[tuple[str, Document]]:
    """(split, document) of every document to write. With an evaluation set: its documents are the
    validation split, and the corpus's documents are training ones, less the copies of evaluation
    documents (same id or same text; counted in `excluded` by reason). Without one: by id hash."""
    if eval_set is None:
        for doc in read_documents(corpus):
            yield ("val" if is_validation(doc.id, config) else "train"), doc
        return
    for doc in eval_set.documents:
        yield "val", doc
    for doc in read_documents(corpus):
        reason = eval_set.excludes(doc)
        if reason is None:
            yield "train", doc
        elif excluded is not None:
            excluded[reason] += 1


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


def train_tokenizer(texts: Iterable[str], config: TokenizeConfig) -> Tokenizer:
    """A tokenizer of `config.kind` trained on `texts`, with the special tokens at ids 0..3."""
    tokenizer = _train_bpe(texts, config) if config.kind == "bpe" else _train_char(texts, config)
    bos, eos = config.bos_token, config.eot_token
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B:1 {eos}:1",
        special_tokens=[(bos, tokenizer.token_to_id(bos)), (eos, tokenizer.token_to_id(eos))])
    return tokenizer


def _train_bpe(texts: Iterable[str], config: TokenizeConfig) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size,
        min_frequency=config.min_frequency,
        special_tokens=config.special_tokens(),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    # The trainer registers the special tokens as "added tokens", which are matched in raw text before
    # anything else; keep them only as vocabulary entries (see the module docstring).
    data = json.loads(tokenizer.to_str())
    data["added_tokens"] = []
    return Tokenizer.from_str(json.dumps(data))


def _train_char(texts: Iterable[str], config: TokenizeConfig) -> Tokenizer:
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text)
    vocab = {token: i for i, token in enumerate(config.special_tokens())}
    for byte in range(256):
        vocab[f"<0x{byte:02X}>"] = len(vocab)
    room = config.vocab_size - len(vocab)
    frequent = sorted((c for c, n in counts.items() if n >= config.min_frequency and c not in vocab),
                      key=lambda c: (-counts[c], c))[:room]
    for char in frequent:
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], byte_fallback=True))
    # Whitespace runs and the text between them as separate words: bounded words for the model's cache.
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"\s+"), behavior="isolated")
    tokenizer.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse()])
    return tokenizer


def tokenizer_kind(tokenizer: Tokenizer) -> str:
    """'char' for a character tokenizer (a BPE model with byte fallback), else 'bpe'."""
    return "char" if json.loads(tokenizer.to_str())["model"].get("byte_fallback") else "bpe"


def special_ids(tokenizer: Tokenizer, config: TokenizeConfig | None = None) -> dict[str, int | None]:
    """{"eos", "bos", "pad", "mask"} ids of a tokenizer made by this stage (None where it has none)."""
    config = config or TokenizeConfig()
    return {name: tokenizer.token_to_id(token) for name, token in
            zip(("eos", "bos", "pad", "mask"), config.special_tokens())}


def tokenize(corpus: Path, out: Path, config: TokenizeConfig, tokenizer: Path | None = None,
             eval_set: Path | None = None) -> dict:
    """Train the tokenizer on the training documents of `corpus`, then write the token files to `out`.

    With `tokenizer` (an existing tokenizer.json, e.g. a trained model's) nothing is trained: the corpus
    is encoded with that file, copied byte for byte to `out`, so a model can be evaluated on a new corpus.
    With `eval_set` (a directory made by training/evalset.py) its documents are the validation split and
    their copies in the corpus are left out of training; without one the split is by document id hash."""
    corpus, out = Path(corpus), Path(out)
    held_out = load_evalset(eval_set) if eval_set is not None else None
    existing = Path(tokenizer) if tokenizer is not None else None
    given = load_tokenizer(existing) if existing is not None else None  # a missing file: one line, first
    work = work_directory(out, "tokenize", {
        "corpus": [file_identity(f) for f in document_files(corpus)], "config": dataclasses.asdict(config) | {"workers": 0},
        "eval_set": held_out.digest if held_out is not None else None,
        "tokenizer": file_identity(existing) if existing is not None else None})
    tokenizer_file = existing if existing is not None else work / "tokenizer.json"
    if given is not None or tokenizer_file.exists():  # given, or trained before a kill
        tokenizer = given or load_tokenizer(tokenizer_file)
    else:
        tokenizer = train_tokenizer(training_texts(corpus, config, held_out), config)
        tokenizer.save(str(work / ".tokenizer.json.tmp"))
        os.replace(work / ".tokenizer.json.tmp", tokenizer_file)
    ids = special_ids(tokenizer, config)
    vocab_size = tokenizer.get_vocab_size()
    dtype = token_dtype(vocab_size)
    with atomic_directory(out) as tmp:
        excluded: Counter = Counter()
        documents = split_documents(corpus, config, held_out, excluded)
        chunks = encoded_chunks(documents, tokenizer, tokenizer_file, dtype, work, config)
        counts = _write_chunks(chunks, tmp)
        for split in SPLITS:
            if counts[split]["documents"] == 0:
                if held_out is not None:  # only train can be empty: the evaluation set is never empty
                    raise UserError(f"{corpus}: every document is in the evaluation set {held_out.path} "
                                    f"(by id or text): nothing left to train on")
                raise UserError(f"{corpus}: no documents fell into the {split} split "
                                f"(tokenize.val_fraction is {config.val_fraction}; add documents or change it)")
        sources, langs = sorted(counts["sources"]), sorted(counts["langs"])
        for split in SPLITS:
            c = counts[split]
            np.save(tmp / f"{split}.docs.npy", np.asarray(c["ranges"], dtype=np.int64).reshape(-1, 2))
            np.save(tmp / f"{split}.source.npy", np.asarray([sources.index(s) for s in c["source"]], np.int16))
            np.save(tmp / f"{split}.lang.npy", np.asarray([langs.index(s) for s in c["lang"]], np.int16))
        shutil.copyfile(tokenizer_file, tmp / "tokenizer.json")  # the same bytes: evaluate compares them
        meta = {
            "corpus": corpus.as_posix(),
            "kind": tokenizer_kind(tokenizer) if existing is not None else config.kind,
            "dtype": dtype.name,
            "eot_id": ids["eos"],
            "eot_token": config.eot_token,
            "bos_id": ids["bos"],
            "pad_id": ids["pad"],
            "mask_id": ids["mask"],
            "vocab_size": vocab_size,
            "sources": sources,
            "langs": langs,
            # The validation split's identity when it is an evaluation set: the same on every corpus version.
            "eval_set": None if held_out is None else {
                "path": held_out.path.as_posix(), "digest": held_out.digest,
                "excluded_from_train": {"by_id": excluded["id"], "by_text": excluded["text"]}},
            **{split: {**{k: counts[split][k] for k in ("tokens", "documents", "bytes")},
                       "by_source": _sorted(counts[split]["by_source"]),
                       "by_lang": _sorted(counts[split]["by_lang"])} for split in SPLITS},
        }
        write_json(tmp / "meta.json", meta)
        stats = _stats(counts, meta)
        # corpus documents that are copies of evaluation documents: not written at all
        stats.removed.update({f"in_eval_set_by_{reason}": n for reason, n in excluded.items()})
        stats.write(tmp)
    shutil.rmtree(work)
    summary = {k: v for k, v in stats.to_dict().items() if k in ("documents_in", "bytes_in", "documents_out", "bytes_out")}
    return {"stage": "tokenize", **summary, **meta, "fertility": stats.extra["fertility"]}


def _sorted(groups: dict) -> dict:
    return {name: dict(groups[name]) for name in sorted(groups)}


def training_texts(corpus: Path, config: TokenizeConfig, held_out: EvalDocuments | None) -> Iterator[str]:
    """The texts the tokenizer trains on: every training document when they hold at most
    `train_sample_bytes`, else those whose id hashes below train_sample_bytes / their bytes (a share
    spread over the whole corpus: the trainer's memory stays bounded however large the corpus)."""
    total = sum(d.nbytes for split, d in split_documents(corpus, config, held_out) if split == "train")
    share = config.train_sample_bytes / max(total, 1)
    for split, doc in split_documents(corpus, config, held_out):
        if split == "train" and (share >= 1 or id_rank(doc.id, config.seed + SAMPLE_SALT) < share):
            yield doc.text


def encoded_chunks(documents: Iterable[tuple[str, Document]], tokenizer: Tokenizer, tokenizer_file: Path,
                   dtype: np.dtype, work: Path, config: TokenizeConfig) -> Iterator[Path]:
    """Chunk files of CHUNK_DOCUMENTS documents each, in corpus order: encoded here (`workers` 1) or by
    `workers` processes, at most two chunks a worker in flight; a chunk encoded before a kill is kept."""
    pool = None
    if config.workers > 1:
        pool = ProcessPoolExecutor(config.workers, mp_context=multiprocessing.get_context("spawn"))
    pending: deque = deque()
    try:
        for number, chunk in enumerate(_chunks(progress(documents, desc="tokenize", unit="doc"))):
            path = work / f"chunk-{number:06d}.npz"
            items = [(split, doc.text, str(doc.meta.get("source") or UNKNOWN), str(doc.meta.get("lang") or UNKNOWN),
                      doc.nbytes) for split, doc in chunk]
            if path.exists():
                pending.append(path)
            elif pool is None:
                encode_chunk(tokenizer, items, dtype.name, path, config.encode_batch)
                pending.append(path)
            else:
                pending.append(pool.submit(encode_chunk, str(tokenizer_file), items, dtype.name, path, config.encode_batch))
            while pending and (isinstance(pending[0], Path) or len(pending) > 2 * config.workers):
                yield _done(pending.popleft())
        while pending:
            yield _done(pending.popleft())
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _chunks(documents: Iterable[tuple[str, Document]]) -> Iterator[list[tuple[str, Document]]]:
    chunk: list[tuple[str, Document]] = []
    for item in documents:
        chunk.append(item)
        if len(chunk) >= CHUNK_DOCUMENTS:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _done(item: Path | Future) -> Path:
    return item if isinstance(item, Path) else item.result()


_worker_tokenizers: dict[str, Tokenizer] = {}


def encode_chunk(tokenizer: Tokenizer | str, items: list[tuple], dtype: str, path: Path, batch: int) -> Path:
    """Encode (split, text, source, lang, bytes) items and write their tokens and counts to `path` (atomically).
    `tokenizer`: the tokenizer, or in a worker process its file (loaded once per process)."""
    if isinstance(tokenizer, str):
        tokenizer = _worker_tokenizers.get(tokenizer) or _worker_tokenizers.setdefault(tokenizer, load_tokenizer(Path(tokenizer)))
    texts = [item[1] for item in items]
    tokens = [np.asarray(e.ids, dtype=dtype)  # BOS + text + EOS each; a batch's Encoding objects dropped at once
              for lo in range(0, len(texts), batch) for e in tokenizer.encode_batch(texts[lo : lo + batch])]
    split = np.array([SPLITS.index(item[0]) for item in items], dtype=np.uint8)
    arrays = {f"tokens_{name}": np.concatenate([t for t, s in zip(tokens, split) if s == i] or [np.zeros(0, dtype)])
              for i, name in enumerate(SPLITS)}
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, split=split, lengths=np.array([len(t) for t in tokens], dtype=np.int64),
             bytes=np.array([item[4] for item in items], dtype=np.int64),
             words=np.array([len(text.split()) for text in texts], dtype=np.int64),  # a ZWNJ does not split a word
             source=np.array([item[2] for item in items], dtype=str), lang=np.array([item[3] for item in items], dtype=str),
             **arrays)
    os.replace(tmp, path)
    return path


def _write_chunks(chunks: Iterable[Path], out: Path) -> dict:
    """Append each chunk's tokens to its split's .bin, in order; count tokens, words and bytes per document."""
    counts: dict = {s: {"tokens": 0, "documents": 0, "bytes": 0, "ranges": [], "source": [], "lang": [],
                        "words": defaultdict(lambda: [0, 0]),
                        "by_source": defaultdict(Counter), "by_lang": defaultdict(Counter)} for s in SPLITS}
    counts["sources"], counts["langs"] = set(), set()
    files = {s: open(out / f"{s}.bin", "wb") for s in SPLITS}
    try:
        for path in chunks:
            with np.load(path, allow_pickle=False) as chunk:
                for name in SPLITS:
                    chunk[f"tokens_{name}"].tofile(files[name])
                _count_chunk(chunk, counts)
    finally:
        for f in files.values():
            f.close()
    return counts


def _count_chunk(chunk: Any, counts: dict) -> None:
    rows = zip(chunk["split"].tolist(), chunk["lengths"].tolist(), chunk["bytes"].tolist(), chunk["words"].tolist(),
               chunk["source"].tolist(), chunk["lang"].tolist())
    for split, n, nbytes, words, source, lang in rows:
        c = counts[SPLITS[split]]
        c["ranges"].append((c["tokens"], c["tokens"] + n))
        c["tokens"] += n
        c["documents"] += 1
        c["bytes"] += nbytes
        c["source"].append(source)
        c["lang"].append(lang)
        counts["sources"].add(source)
        counts["langs"].add(lang)
        for group, name in (("by_source", source), ("by_lang", lang)):
            c[group][name].update(documents=1, tokens=n, bytes=nbytes)
        for key in ("all", lang):
            c["words"][key][0] += n - 2  # BOS and EOS are not text
            c["words"][key][1] += words


def _stats(counts: dict, meta: dict) -> StageStats:
    """stats.json: document/byte counts and fertility (tokens per whitespace word) per language."""
    merged: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for split in SPLITS:
        for lang, (tokens, words) in counts[split]["words"].items():
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
            "kind": meta["kind"],
            "vocab_size": meta["vocab_size"],
            "dtype": meta["dtype"],
            "splits": {s: {k: meta[s][k] for k in ("tokens", "documents", "bytes")} for s in SPLITS},
            "fertility": fertility,
            "bytes_per_token": round(nbytes / max(1, meta["train"]["tokens"] + meta["val"]["tokens"]), 4),
            "eval_set": meta["eval_set"],
        },
    )


def load_tokenizer(path: Path) -> Tokenizer:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: tokenizer file not found (run the tokenize stage first)")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:  # the tokenizers library raises bare Exceptions on malformed files
        raise UserError(f"{path}: not a tokenizer file ({str(exc).splitlines()[0][:200]})") from None


def token_byte_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """UTF-8 bytes each token id stands for. Byte-level BPE maps one byte to one character; the char
    tokenizer's tokens are characters (their UTF-8 length) or single bytes (<0xNN>). Special tokens
    (BOS, EOS, PAD, MASK, and added special tokens such as chat markers) stand for no text: 0 bytes."""
    lengths = np.zeros(tokenizer.get_vocab_size(), dtype=np.int64)
    added = {t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special}
    char = tokenizer_kind(tokenizer) == "char"
    for token, idx in tokenizer.get_vocab().items():
        if token in added or SPECIAL_TOKEN.fullmatch(token):
            lengths[idx] = 0
        elif char:
            lengths[idx] = 1 if BYTE_TOKEN.fullmatch(token) else len(token.encode("utf-8"))
        else:
            lengths[idx] = len(token)
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


def read_documents_index(tokens: Path, split: str, meta: dict) -> dict[str, np.ndarray] | None:
    """{"ranges": (n, 2) [start, end), "source": names per document, "lang": names per document} of a
    split, or None for token files written before these were (re-run tokenize to get them)."""
    tokens = Path(tokens)
    paths = {name: tokens / f"{split}.{name}.npy" for name in ("docs", "source", "lang")}
    if not all(p.is_file() for p in paths.values()) or "sources" not in meta:
        return None
    return {"ranges": np.load(paths["docs"]),
            "source": np.asarray(meta["sources"], dtype=object)[np.load(paths["source"])],
            "lang": np.asarray(meta["langs"], dtype=object)[np.load(paths["lang"])]}
