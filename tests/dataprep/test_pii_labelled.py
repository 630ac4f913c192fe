"""Precision and recall per PII type on the labelled set (tests/dataprep/pii_set/, en/fa/pl + hard negatives).

`python tests/dataprep/pii_set/evaluate.py` prints the table with every miss and false alarm.
"""

import importlib.util
from pathlib import Path

import pytest

from dataprep.steps.pii import KINDS

SPEC = importlib.util.spec_from_file_location("pii_evaluate", Path(__file__).parent / "pii_set" / "evaluate.py")
evaluate_module = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(evaluate_module)


@pytest.fixture(scope="module")
def result():
    return evaluate_module.evaluate(evaluate_module.load())


def test_the_set_is_sizeable_and_covers_every_type_and_language():
    records = evaluate_module.load()
    spans = [(r["lang"], s["type"]) for r in records for s in r["spans"]]
    for kind in KINDS:
        for lang in ("en", "fa", "pl"):
            assert sum(1 for sl, st in spans if (sl, st) == (lang, kind)) >= 5, (lang, kind)
    assert sum(r["hard_negative"] for r in records) >= 100


@pytest.mark.parametrize("kind", KINDS)
def test_precision_and_recall_per_type(result, kind):
    r = result[kind]
    misses = [e for e in result["errors"] if e[1] == kind]
    assert r["precision"] >= 0.98 and r["recall"] >= 0.98, (r, misses[:10])


def test_no_hard_negative_is_scrubbed(result):
    assert result["hard_negatives_scrubbed"] == []
