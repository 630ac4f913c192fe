"""The arithmetic task's split by cell (examples/finetune/arith.py): every held-out question asks a
fact, in its own language, that each training file shows in another phrasing; and its "misread
operand" wrong answers are wrong by the checker while their arithmetic is right."""

import random
import runpy
from collections import Counter
from pathlib import Path

ARITH = runpy.run_path(str(Path(__file__).resolve().parents[3] / "examples" / "finetune" / "arith.py"))


def cell(q: dict) -> tuple:
    return q["lang"], q["op"], q["a"], q["b"]


def test_every_held_out_cell_is_shown_once_by_each_training_file():
    files = ARITH["split"](random.Random(ARITH["SEED"]))
    assert {name: len(rows) for name, rows in files.items()} == {
        "held_out.jsonl": 150, "prompts.jsonl": 300, "preferences.jsonl": 450, "sft.jsonl": 960}
    held = Counter(cell(q) for q in files["held_out.jsonl"])
    assert len(held) == 150 and set(held.values()) == {1}  # one question per held-out cell
    for name in ("sft.jsonl", "preferences.jsonl", "prompts.jsonl"):
        shown = Counter(cell(q) for q in files[name] if cell(q) in held)
        assert set(shown) == set(held) and set(shown.values()) == {1}, name
    prompts = [q["prompt"] for rows in files.values() for q in rows]
    assert len(prompts) == len(set(prompts)) == 1860  # still every question once


def test_misread_operand_is_wrong_but_consistent():
    rng = random.Random(0)
    check = ARITH["check"]
    for q in ARITH["questions"]():
        answer = ARITH["misread"](q, rng)
        left, _, value = answer.rpartition(" = ")
        a, op, b = (ARITH["numeric_value"](part) if part not in "+-" else part for part in left.split(" "))
        assert op == q["op"] and (a, b) != (q["a"], q["b"]) and (a == q["a"] or b == q["b"])
        assert ARITH["numeric_value"](value) == (a + b if op == "+" else a - b) >= 0
        assert not check(answer, q["answer"])
