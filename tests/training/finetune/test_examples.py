"""The shipped example data: rebuilt byte for byte by its generator, loadable, in all three languages."""

import json
import runpy
from collections import Counter
from pathlib import Path

from training.finetune.data import load_preferences, load_sft

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "finetune"


def test_generator_rebuilds_the_shipped_files(tmp_path):
    runpy.run_path(str(EXAMPLES / "make_examples.py"))["main"](tmp_path)
    for name in ("sft.jsonl", "preferences.jsonl"):
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), name


def test_examples_load_in_three_languages():
    sft, pairs = load_sft(EXAMPLES / "sft.jsonl"), load_preferences(EXAMPLES / "preferences.jsonl")
    assert len(sft) == 75 and len(pairs) == 36 + 36 * 3
    langs = Counter(json.loads(line)["lang"] for line in (EXAMPLES / "preferences.jsonl").read_text().splitlines())
    assert langs == {"en": 24, "fa": 24, "pl": 24}
    assert any("\u200c" in p.chosen for p in pairs)  # Persian keeps its zero-width non-joiners
