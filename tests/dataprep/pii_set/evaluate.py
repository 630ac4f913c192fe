"""Precision and recall of the PII scrubber per type on pii_labelled.jsonl (and hard negatives scrubbed).

    python tests/dataprep/pii_set/evaluate.py     # prints a table; tests/dataprep/test_pii_labelled.py asserts it
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

from dataprep.steps.pii import KINDS, PIIConfig, PIIReplacer

LABELLED = Path(__file__).with_name("pii_labelled.jsonl")


def load() -> list[dict]:
    return [json.loads(line) for line in LABELLED.read_text(encoding="utf-8").splitlines() if line.strip()]


def evaluate(records: list[dict], config: PIIConfig | None = None) -> dict:
    """{kind: {precision, recall, tp, fp, fn}}, plus 'hard_negatives_scrubbed' and 'errors' (examples)."""
    replacer = PIIReplacer(config or PIIConfig())
    tp, fp, fn = Counter(), Counter(), Counter()
    errors, negatives_scrubbed = [], []
    for record in records:
        found = Counter(replacer.find(record["text"], record["lang"]))
        labelled = Counter((span["type"], span["value"]) for span in record["spans"])
        for (kind, value), n in (found | labelled).items():
            hit = min(found[(kind, value)], labelled[(kind, value)])
            tp[kind] += hit
            if found[(kind, value)] > hit:
                fp[kind] += found[(kind, value)] - hit
                errors.append(("FP", kind, value, record["id"]))
            if labelled[(kind, value)] > hit:
                fn[kind] += labelled[(kind, value)] - hit
                errors.append(("FN", kind, value, record["id"]))
        if record["hard_negative"] and found:
            negatives_scrubbed.append((record["id"], record["text"], sorted(found)))
    result: dict = {}
    for kind in KINDS:
        result[kind] = {
            "precision": tp[kind] / max(tp[kind] + fp[kind], 1),
            "recall": tp[kind] / max(tp[kind] + fn[kind], 1),
            "tp": tp[kind], "fp": fp[kind], "fn": fn[kind],
        }
    result["hard_negatives_scrubbed"] = negatives_scrubbed
    result["errors"] = errors
    return result


def main() -> int:
    records = load()
    result = evaluate(records)
    print(f"{len(records)} records, {sum(r['hard_negative'] for r in records)} hard negatives")
    print(f"{'type':<6} {'precision':>9} {'recall':>7} {'tp':>5} {'fp':>4} {'fn':>4}")
    for kind in KINDS:
        r = result[kind]
        print(f"{kind:<6} {r['precision']:>9.3f} {r['recall']:>7.3f} {r['tp']:>5} {r['fp']:>4} {r['fn']:>4}")
    print(f"hard negatives scrubbed: {len(result['hard_negatives_scrubbed'])}")
    for error in result["errors"]:
        print("  ", *error)
    for negative in result["hard_negatives_scrubbed"]:
        print("   negative:", *negative)
    return 0


if __name__ == "__main__":
    sys.exit(main())
