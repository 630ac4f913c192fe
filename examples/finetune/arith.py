"""A checkable fine-tuning task: short arithmetic questions in English, Persian (Persian digits) and
Polish, and the exact-answer checker that grades them.

    python examples/finetune/arith.py [DIR]      # writes DIR (default examples/finetune/arith/)

Questions add or subtract two numbers from 0 to 9, in four phrasings per operation and language
("What is 7 plus 5?", "۷ به علاوه ۵ چند می‌شود؟", "Ile to jest 7 plus 5?", ...): 1,860 questions over
155 facts. Answers restate the sum, then give its value ("7 + 5 = 12"; Persian digits for Persian);
the checker grades the value after the last "=". Every question goes to exactly one of four files, so
no held-out question is ever trained on. The split is by cell (a fact in one language: 465 cells of
four phrasings each), so that every held-out question asks a fact, in its own language and digits, that
every training stage shows in other phrasings: 150 seeded held-out cells give one phrasing each to
held_out.jsonl, sft.jsonl, preferences.jsonl and prompts.jsonl; the other 315 cells fill the rest
(SFT data mostly). What is measured is then what the stages teach about the facts, not whether a
4-layer model can guess a fact it has never seen in that script:

  sft.jsonl          {"prompt", "response", "lang"}: question and its worked answer (960)
  preferences.jsonl  {"prompt", "chosen", "rejected", "lang", "rejected_kind"}: the worked answer against
                     one with a wrong value (off by one or two, the other operation, the other digits, or
                     computed from a misread operand) (450)
  pairs.jsonl        the reward model's data: preferences.jsonl's 450 pairs and one more pair (the same
                     kinds of wrong) per SFT question, 1,410 pairs, one per question (no prompt twice, so
                     the reward stage's held-out pairs never share a prompt with its training pairs)
  prompts.jsonl      {"prompt", "answer", "lang"}: prompts for PPO and GRPO (answer: the bare value) (300)
  held_out.jsonl     {"prompt", "answer", "lang"}: never trained on; `held_out_accuracy` is measured here (150)

Same seed, same bytes (a test checks the generator against itself).
"""

from __future__ import annotations

import json
import random
import re
import sys
from pathlib import Path

SEED = 20261207
OUT = Path(__file__).resolve().parent / "arith"
PERSIAN_DIGITS = "۰۱۲۳۴۵۶۷۸۹"
TO_ASCII = str.maketrans(PERSIAN_DIGITS + "٠١٢٣٤٥٦٧٨٩", "0123456789" * 2)  # Persian and Arabic-Indic digits
PHRASES = {  # language -> operation -> phrasings
    "en": {"+": ["What is {a} plus {b}?", "Add {a} and {b}.", "How much is {a} + {b}?", "{a} + {b} = ?"],
           "-": ["What is {a} minus {b}?", "Subtract {b} from {a}.", "How much is {a} - {b}?", "{a} - {b} = ?"]},
    "fa": {"+": ["{a} به علاوه {b} چند می‌شود؟", "{a} و {b} را جمع کن.", "حاصل {a} + {b} چیست؟", "{a} + {b} = ؟"],
           "-": ["{a} منهای {b} چند می‌شود؟", "{b} را از {a} کم کن.", "حاصل {a} - {b} چیست؟", "{a} - {b} = ؟"]},
    "pl": {"+": ["Ile to jest {a} plus {b}?", "Dodaj {a} i {b}.", "Ile wynosi {a} + {b}?", "{a} + {b} = ile?"],
           "-": ["Ile to jest {a} minus {b}?", "Odejmij {b} od {a}.", "Ile wynosi {a} - {b}?", "{a} - {b} = ile?"]},
}
HELD_OUT_CELLS = {"en": 49, "fa": 54, "pl": 47}  # held-out questions per language (the earlier split's, which tests pin)
# The four phrasings of a held-out cell go one to each file; the other cells' phrasings by these
# patterns, in turn, so that the files keep their sizes: 150 + 150 prompts, 150 + 300 preferences,
# 150 + 810 SFT questions.
PATTERNS = [(150, ("prompts.jsonl", "preferences.jsonl", "sft.jsonl", "sft.jsonl")),
            (150, ("preferences.jsonl", "sft.jsonl", "sft.jsonl", "sft.jsonl")),
            (15, ("sft.jsonl",) * 4)]
HELD_OUT_PATTERN = ("held_out.jsonl", "prompts.jsonl", "preferences.jsonl", "sft.jsonl")


def number(value: int, lang: str) -> str:
    text = str(value)
    return text.translate(str.maketrans("0123456789", PERSIAN_DIGITS)) if lang == "fa" else text


def check(response: str, answer: str) -> bool:
    """Exact answer: what follows the response's last "=" (the whole response when it has none), stripped
    of spaces and a final full stop, is the answer, in the answer's own digits (a Persian answer in
    ASCII digits is wrong, as the other way round). "7 + 5 = 12" and "12" both answer 12."""
    return response.rpartition("=")[2].strip().rstrip(".").strip() == answer.strip()


def worked(a: int, op: str, b: int, value: int | str, lang: str) -> str:
    """The answer as the task's data writes it: the sum restated, then its value ("7 + 5 = 12"). A
    small model computes far more easily from operands it has just written than from the question."""
    value = number(value, lang) if isinstance(value, int) else value
    return f"{number(a, lang)} {op} {number(b, lang)} = {value}"


def numeric_value(text: str) -> int | None:
    """The number a response states, whichever digits it uses (for reporting; the checker is stricter)."""
    found = re.findall(r"-?\d+", text.translate(TO_ASCII))
    return int(found[-1]) if found else None


def questions() -> list[dict]:
    """Every question once: {lang, prompt, answer, a, b, op}, in a fixed order."""
    rows = []
    for lang, operations in PHRASES.items():
        for op, phrasings in operations.items():
            for phrasing in phrasings:
                for a in range(10):
                    for b in range(10):
                        if op == "-" and b > a:
                            continue
                        value = a + b if op == "+" else a - b
                        rows.append({"lang": lang, "prompt": phrasing.format(a=number(a, lang), b=number(b, lang)),
                                     "answer": number(value, lang), "value": value, "op": op, "a": a, "b": b})
    return rows


def wrong_answer(question: dict, rng: random.Random) -> tuple[str, str]:
    """(a wrong worked answer, what kind of wrong) for a preference pair. "misread operand" restates one
    operand wrong and computes from it: 43% of the demo-sized SFT model's wrong samples, 87% of its wrong
    Persian ones (a Persian digit is two byte-level tokens), which a reward model that only ever saw a
    wrong value after a right restatement ranks poorly."""
    lang, value = question["lang"], question["value"]
    kinds = ["off by one", "off by two", "other operation", "misread operand"] + (
        ["other digits"] if lang == "fa" and value else [])
    kind = rng.choice(kinds)
    if kind == "misread operand":
        return misread(question, rng), kind
    if kind == "other digits":
        wrong: int | str = str(value)  # the right number in ASCII digits: wrong for a Persian answer
    elif kind == "other operation" and question["a"] - question["b"] != question["a"] + question["b"]:
        wrong = question["a"] - question["b"] if question["op"] == "+" else question["a"] + question["b"]
    else:
        kind = "off by one" if kind == "other operation" else kind
        step = 1 if kind == "off by one" else 2
        wrong = value + step if value < step or rng.random() < 0.5 else value - step
    return worked(question["a"], question["op"], question["b"], wrong, lang), kind


def misread(question: dict, rng: random.Random) -> str:
    """A worked answer with one operand misread (another digit) and the value computed from it: a
    valid sum of the same operation (no negative difference) whose value is not the question's."""
    a, b, op, lang = question["a"], question["b"], question["op"], question["lang"]
    options = [(x, b) for x in range(10) if x != a] + [(a, y) for y in range(10) if y != b]
    options = [(x, y) for x, y in options
               if (x + y if op == "+" else x - y) != question["value"] and (op == "+" or x >= y)]
    x, y = rng.choice(options)
    return worked(x, op, y, x + y if op == "+" else x - y, lang)


def solution(question: dict) -> str:
    return worked(question["a"], question["op"], question["b"], question["value"], question["lang"])


def cells(rows: list[dict]) -> dict[tuple, list[dict]]:
    """Questions by cell, (lang, op, a, b): the four phrasings of one fact in one language."""
    by_cell: dict[tuple, list[dict]] = {}
    for q in rows:
        by_cell.setdefault((q["lang"], q["op"], q["a"], q["b"]), []).append(q)
    return by_cell


def split(rng: random.Random) -> dict[str, list[dict]]:
    """Questions by file: seeded held-out cells per language, then the other cells by PATTERNS."""
    by_cell = cells(questions())
    keys = list(by_cell)
    rng.shuffle(keys)
    held = set()
    for lang, n in HELD_OUT_CELLS.items():
        held.update([k for k in keys if k[0] == lang][:n])
    plan = [HELD_OUT_PATTERN for _ in held] + [pattern for n, pattern in PATTERNS for _ in range(n)]
    ordered = [k for k in keys if k in held] + [k for k in keys if k not in held]
    assert len(plan) == len(ordered), "PATTERNS must cover every cell"
    files: dict[str, list[dict]] = {name: [] for name in ("held_out.jsonl", "prompts.jsonl", "preferences.jsonl",
                                                           "sft.jsonl")}
    for key, pattern in zip(ordered, plan):
        phrasings = by_cell[key][:]
        rng.shuffle(phrasings)  # which phrasing lands where is seeded too
        for q, name in zip(phrasings, pattern):
            files[name].append(q)
    for rows in files.values():
        rng.shuffle(rows)  # no file lists a cell's questions together
    return files


def build(seed: int = SEED) -> dict[str, list[dict]]:
    rng = random.Random(seed)
    files = split(rng)
    out = {"sft.jsonl": [{"prompt": q["prompt"], "response": solution(q), "lang": q["lang"]} for q in files["sft.jsonl"]]}
    out["preferences.jsonl"] = []
    for q in files["preferences.jsonl"]:
        rejected, kind = wrong_answer(q, rng)
        out["preferences.jsonl"].append({"prompt": q["prompt"], "chosen": solution(q), "rejected": rejected,
                                         "lang": q["lang"], "rejected_kind": kind})
    pair_rng = random.Random(seed + 1)  # its own stream: the other files do not depend on this one
    out["pairs.jsonl"] = []
    for q in files["sft.jsonl"]:
        rejected, kind = wrong_answer(q, pair_rng)
        out["pairs.jsonl"].append({"prompt": q["prompt"], "chosen": solution(q), "rejected": rejected,
                                   "lang": q["lang"], "rejected_kind": kind})
    out["pairs.jsonl"] += out["preferences.jsonl"]
    for name in ("prompts.jsonl", "held_out.jsonl"):
        out[name] = [{"prompt": q["prompt"], "answer": q["answer"], "lang": q["lang"]} for q in files[name]]
    return out


def main(directory: Path = OUT) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in build().items():
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        (directory / name).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
