"""The evaluation set: documents frozen once, versioned on their own, kept out of every training corpus.

Runs on different corpus versions compare only if they are evaluated on the same documents. The
evaluation set is therefore an artifact of its own (the DVC stage `evalset`, data/evalset/), made once:

  - from the corpus: the documents whose id hashes (SHA-256 of "<seed>:<id>") below `fraction`, at most
    `max_documents` of them (the lowest hashes), one per distinct text; with the default seed this is
    the validation split the tokenize stage made by id hash before there was an evaluation set;
  - or from `evalset.source`, a documents file or directory of the user's (the same cap applies).

Once made it is kept: a later corpus (or changed `evalset` params) leaves it as it is. It is remade only
on request (`tokenmill evalset --refresh`, or deleting the directory). The tokenize stage writes it as the
validation split and leaves out of training every corpus document with the same id or the same text
(whitespace runs collapsed), so a page recrawled into a later corpus version never lands in train.

Output directory:
  documents.jsonl  the documents (id, text and their metadata), lowest hash first
  meta.json        the rule it was made with, where from, its documents/bytes per language, and `digest`:
                   the SHA-256 of the documents' text, the `eval_set` identity evaluation reports
  stats.json       the stage's counts
"""

from __future__ import annotations

import hashlib
import heapq
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tokenmill.documents import Document, read_documents
from tokenmill.errors import UserError
from tokenmill.progress import progress
from tokenmill.stage import StageStats, atomic_directory, output_stage, write_json
from training.config import EvalSetConfig

STAGE = "evalset"
DOCUMENTS_FILE = "documents.jsonl"
RULE_FIELDS = ("fraction", "seed", "max_documents", "source")


def id_rank(doc_id: str, seed: int) -> float:
    """A document's place in [0, 1), a pure function of its id: stable however the corpus grows."""
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def text_key(text: str) -> str:
    """What makes two documents the same text: their words, whitespace runs collapsed (a recrawl that
    only re-wraps lines is the same page)."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def text_digest(texts: list[str]) -> str:
    """The identity of an evaluation set: SHA-256 of its documents' text in order (16 hex digits)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


@dataclass
class EvalDocuments:
    """A made evaluation set, read back: its documents and what keeps their copies out of training."""

    path: Path
    documents: list[Document]
    digest: str

    def __post_init__(self) -> None:
        self.ids = {d.id for d in self.documents}
        self.keys = {text_key(d.text) for d in self.documents}

    def excludes(self, doc: Document) -> str | None:
        """Why `doc` must stay out of training ("id" or "text"), or None."""
        if doc.id in self.ids:
            return "id"
        if text_key(doc.text) in self.keys:
            return "text"
        return None


def load_evalset(path: Path) -> EvalDocuments:
    path = Path(path)
    file, meta_file = path / DOCUMENTS_FILE, path / "meta.json"
    if not (file.is_file() and meta_file.is_file()):
        raise UserError(f"{path}: no evaluation set here (make it with `tokenmill evalset`, "
                        f"or tokenize with --eval-set '' for a split by document id)")
    documents = list(read_documents(file))
    digest = json.loads(meta_file.read_text(encoding="utf-8"))["digest"]
    if digest != text_digest([d.text for d in documents]):
        raise UserError(f"{file}: its text does not match meta.json's digest {digest} "
                        f"(edited by hand? remake it with `tokenmill evalset --refresh`)")
    return EvalDocuments(path, documents, digest)


def make_evalset(corpus: Path, out: Path, config: EvalSetConfig, refresh: bool = False) -> dict:
    """Freeze the evaluation set into `out` from `corpus` (or `config.source`); an existing one is kept
    unless `refresh`."""
    out = Path(out)
    if out.is_dir() and output_stage(out) == STAGE and not refresh:
        return _kept(out, config)
    source = Path(config.source) if config.source else Path(corpus)
    chosen, scanned, scanned_bytes = _choose(source, config)
    if not chosen:
        raise UserError(f"{source}: no document's id hash fell below evalset.fraction={config.fraction} "
                        f"(of {scanned} documents; add documents or raise it)")
    texts = [d.text for d in chosen]
    by_lang: dict[str, Counter] = {}
    for doc in chosen:
        by_lang.setdefault(str(doc.meta.get("lang") or "unknown"), Counter()).update(documents=1, bytes=doc.nbytes)
    meta = {
        "rule": {name: getattr(config, name) for name in RULE_FIELDS},
        "made_from": source.as_posix(),
        "digest": text_digest(texts),
        "documents": len(chosen),
        "bytes": sum(d.nbytes for d in chosen),
        "by_lang": {lang: dict(by_lang[lang]) for lang in sorted(by_lang)},
    }
    with atomic_directory(out, STAGE) as tmp:
        with open(tmp / DOCUMENTS_FILE, "w", encoding="utf-8") as f:
            for doc in chosen:
                f.write(json.dumps(doc.to_record(), ensure_ascii=False, sort_keys=True, default=str) + "\n")
        write_json(tmp / "meta.json", meta)
        StageStats(stage=STAGE, documents_in=scanned, bytes_in=scanned_bytes, documents_out=len(chosen),
                   bytes_out=meta["bytes"], extra={k: meta[k] for k in ("digest", "rule", "made_from", "by_lang")}
                   ).write(tmp)
    return {"stage": STAGE, "kept": False, "path": out.as_posix(), **meta}


def _choose(source: Path, config: EvalSetConfig) -> tuple[list[Document], int, int]:
    """The lowest-hash documents below the fraction (every document of a `source`), one per text."""
    everything = bool(config.source)
    heap: list[tuple[float, int, Document]] = []  # max-heap on rank (negated) of at most max_documents
    seen_keys: dict[str, float] = {}
    scanned = scanned_bytes = 0
    for scanned, doc in enumerate(progress(read_documents(source), desc="evalset", unit="doc"), 1):
        scanned_bytes += doc.nbytes
        rank = id_rank(doc.id, config.seed)
        if not everything and rank >= config.fraction:
            continue
        key = text_key(doc.text)
        if seen_keys.get(key, 2.0) <= rank:  # the same text under another id: keep the lower hash
            continue
        seen_keys[key] = rank
        item = (-rank, scanned, doc)
        if len(heap) < config.max_documents:
            heapq.heappush(heap, item)
        elif rank < -heap[0][0]:
            heapq.heapreplace(heap, item)
    kept = sorted(((-r, doc) for r, _, doc in heap), key=lambda pair: (pair[0], pair[1].id))
    chosen, keys = [], set()
    for _, doc in kept:  # a text displaced above by its lower-hash copy appears once
        key = text_key(doc.text)
        if key not in keys:
            keys.add(key)
            chosen.append(doc)
    return chosen, scanned, scanned_bytes


def _kept(out: Path, config: EvalSetConfig) -> dict:
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    asked = {name: getattr(config, name) for name in RULE_FIELDS}
    if meta.get("rule") != asked:
        print(f"tokenmill evalset: keeping {out} (made with {meta.get('rule')}; params now say {asked}); "
              f"`tokenmill evalset --refresh` remakes it", file=sys.stderr)
    return {"stage": STAGE, "kept": True, "path": out.as_posix(), **meta}
