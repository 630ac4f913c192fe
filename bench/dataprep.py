"""Throughput of the prepare stage's Gopher filters and MinHash dedup on real text, with references.

    .venv/bin/python bench/dataprep.py [--data ../shared/data] [--repeat 3]

Corpus: tinyshakespeare cut into ~2,000-character documents at blank lines, plus the hand-labelled
article bodies of the article-extraction benchmark (181 news/blog pages). References, run in the
same process on the same documents:
- datatrove's GopherQualityFilter + GopherRepetitionFilter (when `import datatrove` works; it needs
  spacy for English words; neither is a tokenmill dependency, so the comparison is skipped without them),
- a plain datasketch loop (MinHash.update per shingle, MinHashLSH insert + query) for the dedup.
Prints docs/s and MB/s for each and the ratio ours/reference (> 1: ours is faster).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

# Run as a script, this file's folder comes first on sys.path and its name would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from dataprep.config import NearDedupConfig, QualityConfig, RepetitionConfig  # noqa: E402
from dataprep.dedup import NearDedup, shingles  # noqa: E402
from dataprep.filters import GopherQuality, GopherRepetition  # noqa: E402
from tokenmill.documents import Document  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_corpus(data: Path, doc_chars: int = 2000) -> list[Document]:
    docs: list[Document] = []
    shakespeare = (data / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    chunk: list[str] = []
    for paragraph in shakespeare.split("\n\n"):
        chunk.append(paragraph)
        if sum(map(len, chunk)) >= doc_chars:
            docs.append(Document(f"shakespeare-{len(docs):05d}", "\n\n".join(chunk), {"lang": "en"}))
            chunk = []
    truth = json.loads((data / "article-extraction-benchmark" / "ground-truth.json").read_text(encoding="utf-8"))
    for key, page in sorted(truth.items()):
        docs.append(Document(f"article-{key[:12]}", page["articleBody"], {"lang": "en"}))
    return docs


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def report(name: str, seconds: float, docs: int, megabytes: float) -> None:
    print(f"  {name:<44} {seconds:7.3f} s  {docs / seconds:9.0f} docs/s  {megabytes / seconds:7.2f} MB/s")


def ours_filters(docs: list[Document]) -> list[str | None]:
    quality, repetition = GopherQuality(QualityConfig()), GopherRepetition(RepetitionConfig())
    return [quality.reject(d) or repetition.reject(d) for d in docs]


def datatrove_filters(docs: list[Document]) -> list[bool] | None:
    try:
        from datatrove.data import Document as DTDocument
        from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    except ImportError:
        return None
    quality, repetition = GopherQualityFilter(), GopherRepetitionFilter()
    kept = []
    for d in docs:
        doc = DTDocument(text=d.text, id=d.id)
        q = quality.filter(doc)
        kept.append((q is True) and (repetition.filter(doc) is True))
    return kept


def ours_dedup(docs: list[Document]) -> list[str]:
    return [d.id for d in NearDedup(NearDedupConfig()).run(iter(docs))]


def datasketch_dedup(docs: list[Document]) -> int:
    """The textbook loop: one MinHash per document, update per shingle, LSH insert then query."""
    from datasketch import MinHash, MinHashLSH

    c = NearDedupConfig()
    lsh = MinHashLSH(num_perm=c.num_perm, params=(c.bands, c.rows))
    sketches = []
    for number, doc in enumerate(docs):
        m = MinHash(num_perm=c.num_perm, seed=c.seed)
        for shingle in shingles(doc.text, c.ngram_size):
            m.update(shingle)
        lsh.insert(number, m)
        sketches.append(m)
    return sum(len(lsh.query(m)) > 1 for m in sketches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared data directory")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (the best is reported)")
    args = parser.parse_args(argv)
    if not (args.data / "tinyshakespeare" / "input.txt").is_file():
        print(f"{args.data}: shared data not found (tinyshakespeare, article-extraction-benchmark)", file=sys.stderr)
        return 1
    docs = load_corpus(args.data)
    megabytes = sum(d.nbytes for d in docs) / 1e6
    print(f"corpus: {len(docs)} documents, {megabytes:.2f} MB (tinyshakespeare + article bodies)")

    print("Gopher quality + repetition filters")
    ours_s, reasons = best_time(lambda: ours_filters(docs), args.repeat)
    report("tokenmill GopherQuality + GopherRepetition", ours_s, len(docs), megabytes)
    print(f"    kept {sum(r is None for r in reasons)}/{len(docs)}")
    datatrove_filters(docs[:5])  # warm-up: imports spacy and builds its tokenizer once
    ref_s, ref_kept = best_time(lambda: datatrove_filters(docs), args.repeat)
    if ref_kept is None:
        print("  datatrove: not importable, comparison skipped (pip install datatrove spacy)")
    else:
        report("datatrove GopherQuality + GopherRepetition", ref_s, len(docs), megabytes)
        agree = sum((r is None) == k for r, k in zip(reasons, ref_kept))
        print(f"    kept {sum(ref_kept)}/{len(docs)}; same keep/remove decision on {agree}/{len(docs)}")
        print(f"  ratio tokenmill/datatrove throughput: {ref_s / ours_s:.2f}x")

    print("MinHash near-dedup (word 5-grams, 14 bands x 8 rows)")
    ours_s, kept = best_time(lambda: ours_dedup(docs), args.repeat)
    report("tokenmill NearDedup (spool, LSH, union-find)", ours_s, len(docs), megabytes)
    print(f"    kept {len(kept)}/{len(docs)}")
    ref_s, with_candidates = best_time(lambda: datasketch_dedup(docs), args.repeat)
    report("plain datasketch loop (update per shingle)", ref_s, len(docs), megabytes)
    print(f"    documents with LSH candidates: {with_candidates}")
    print(f"  ratio tokenmill/datasketch throughput: {ref_s / ours_s:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
