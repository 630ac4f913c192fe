"""The arithmetic example task (examples/finetune/arith.py): the shipped files are its seeded output
byte for byte, no held-out question is trained on, three languages with Persian digits, and the
exact-answer checker that grades it."""

import json
import runpy
from collections import Counter
from pathlib import Path

from training.finetune.data import load_preferences, load_sft
from training.finetune.task import load_callable, load_prompts

TASK = Path(__file__).resolve().parents[2] / "examples" / "finetune" / "arith"
FILES = ("sft.jsonl", "preferences.jsonl", "prompts.jsonl", "held_out.jsonl")


def rows(name: str, directory: Path = TASK) -> list[dict]:
    return [json.loads(line) for line in (directory / name).read_text(encoding="utf-8").splitlines()]


def test_generator_is_deterministic_and_rebuilds_the_shipped_files(tmp_path):
    runpy.run_path(str(TASK.parent / "arith.py"))["main"](tmp_path)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (TASK / name).read_bytes(), name


def test_splits_are_disjoint_loadable_and_in_three_languages():
    prompts = {name: [r["prompt"] for r in rows(name)] for name in FILES}
    assert sum(map(len, prompts.values())) == len(set().union(*map(set, prompts.values()))) == 1860
    assert len(load_sft(TASK / "sft.jsonl")) == 960 and len(load_preferences(TASK / "preferences.jsonl")) == 450
    held_out = load_prompts(TASK / "held_out.jsonl", need_answer=True)
    assert Counter(p.lang for p in held_out) == {"en": 49, "fa": 54, "pl": 47}
    persian = [p.answer for p in held_out if p.lang == "fa"]
    assert all(set(a) <= set("۰۱۲۳۴۵۶۷۸۹") for a in persian)
    assert all(r["chosen"] != r["rejected"] for r in rows("preferences.jsonl"))


def test_checker_wants_the_exact_answer_in_its_own_digits():
    check = load_callable("examples.finetune.arith:check", "test")
    assert check("12", "12") and check(" 12.", "12") and check("۱۲", "۱۲")
    assert not check("13", "12") and not check("12", "۱۲") and not check("It is 12", "12") and not check("", "0")
