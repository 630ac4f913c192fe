"""Extraction benchmark: crawler.extract.extract_page beside plain trafilatura, in one process.

    .venv/bin/python bench/extraction.py [../shared/data/article-extraction-benchmark]

Prints pages/s for both and their ratio, and the benchmark's published metric for both: word
4-gram overlap with the hand-labelled article body (words = \\w+ matches), per-page TP/FP/FN
normalised to sum 1, precision and recall from their means over pages, F1 from those.
Published: trafilatura 2.0.0 F1 0.958 (P 0.938, R 0.978).
"""

from __future__ import annotations

import gzip
import json
import re
import sys
import time
from collections import Counter
from pathlib import Path

import trafilatura

from crawler.extract import extract_page

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "article-extraction-benchmark"
WORD = re.compile(r"\w+")


def ngrams(text: str, n: int = 4) -> Counter:
    words = WORD.findall(text or "")
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def overlap(predicted: str, truth: str) -> tuple[float, float, float]:
    """TP, FP, FN of one page, normalised to sum 1."""
    pred, true = ngrams(predicted), ngrams(truth)
    tp = sum((pred & true).values())
    fp, fn = sum(pred.values()) - tp, sum(true.values()) - tp
    total = tp + fp + fn
    return (1.0, 0.0, 0.0) if total == 0 else (tp / total, fp / total, fn / total)


def score(rows: list[tuple[float, float, float]]) -> dict[str, float]:
    tp, fp, fn = (sum(r[i] for r in rows) / len(rows) for i in range(3))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / (precision + recall)}


def load(data: Path) -> list[tuple[bytes, str, str]]:
    truth = json.loads((data / "ground-truth.json").read_text(encoding="utf-8"))
    return [(gzip.decompress((data / "html" / f"{key}.html.gz").read_bytes()), item["url"], item["articleBody"])
            for key, item in sorted(truth.items())]


def ours(html: bytes, url: str) -> str:
    extracted = extract_page(html, url=url)
    return extracted.text if extracted else ""


def plain(html: bytes, url: str) -> str:
    return trafilatura.extract(html, url=url) or ""


def run(data: Path) -> dict[str, dict[str, float]]:
    pages = load(data)
    extractors = {"ours": ours, "trafilatura": plain}
    seconds = {name: 0.0 for name in extractors}
    rows: dict[str, list] = {name: [] for name in extractors}
    for name, extract in extractors.items():  # warm up caches and lazy imports
        extract(*pages[0][:2])
    for html, url, truth in pages:  # interleaved, so both see the same machine state
        for name, extract in extractors.items():
            start = time.perf_counter()
            text = extract(html, url)
            seconds[name] += time.perf_counter() - start
            rows[name].append(overlap(text, truth))
    return {name: {"pages_per_s": len(pages) / seconds[name], **score(rows[name])} for name in extractors}


def main(argv: list[str]) -> int:
    data = Path(argv[0]) if argv else DEFAULT_DATA
    if not (data / "ground-truth.json").exists():
        print(f"{data}: benchmark data not found", file=sys.stderr)
        return 1
    results = run(data)
    for name, r in results.items():
        print(f"{name:12s} {r['pages_per_s']:7.1f} pages/s   P {r['precision']:.3f}  R {r['recall']:.3f}  "
              f"F1 {r['f1']:.3f}")
    ratio = results["ours"]["pages_per_s"] / results["trafilatura"]["pages_per_s"]
    print(f"speed ratio ours/trafilatura: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
