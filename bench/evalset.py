"""What the evaluation set costs the tokenize stage: tokenize with the id-hash split (reference) vs freezing
an evaluation set and tokenizing against it (its copies looked up by id and by text for every document).

Corpus: tinyshakespeare cut into documents of 20 lines (../shared/data), plus a copy of every evaluation
document under a new id, as a recrawl would bring it back. Prints seconds and the ratio; checks that no
evaluation text reached train.

    .venv/bin/python bench/evalset.py [--repeat 3] [--data ../shared/data/tinyshakespeare/input.txt]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tokenmill.documents import Document, ShardWriter  # noqa: E402
from training.config import EvalSetConfig, TokenizeConfig  # noqa: E402
from training.evalset import load_evalset, make_evalset  # noqa: E402
from training.tokenizer import tokenize  # noqa: E402

SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"
LINES_PER_DOC = 20


def documents(path: Path) -> list[Document]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Document(f"shakespeare/{i}", "\n".join(lines[i:i + LINES_PER_DOC]), {"lang": "en", "source": "shakespeare"})
            for i in range(0, len(lines), LINES_PER_DOC)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best is printed")
    parser.add_argument("--data", type=Path, default=SHAKESPEARE, help="tinyshakespeare's input.txt")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"{args.data}: absent (see ../shared/data/README.md); nothing measured")
        return 0
    config = TokenizeConfig(vocab_size=2048, val_fraction=0.05)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        docs = documents(args.data)
        base = tmp / "corpus"
        with ShardWriter(base) as writer:
            writer.write_all(docs)
        evalset = tmp / "evalset"
        started = time.perf_counter()
        make_evalset(base, evalset, EvalSetConfig(fraction=0.05))
        freeze_s = time.perf_counter() - started
        frozen = load_evalset(evalset).documents
        corpus = tmp / "recrawled"  # every evaluation document back under another id
        with ShardWriter(corpus) as writer:
            writer.write_all(docs)
            writer.write_all(Document(f"recrawl/{d.id}", d.text, d.meta) for d in frozen)
        timings: dict[str, float] = {"id-hash split (reference)": float("inf"), "evaluation set": float("inf")}
        for run in range(args.repeat):
            for name, eval_set in (("id-hash split (reference)", None), ("evaluation set", evalset)):
                started = time.perf_counter()
                result = tokenize(corpus, tmp / f"tokens-{run}-{eval_set is None}", config, eval_set=eval_set)
                timings[name] = min(timings[name], time.perf_counter() - started)
                if eval_set is not None:
                    excluded = result["eval_set"]["excluded_from_train"]
                    assert excluded == {"by_id": len(frozen), "by_text": len(frozen)}, excluded
    total = len(docs) + len(frozen)
    print(f"corpus: {total} documents ({len(frozen)} of them evaluation-set copies under new ids), "
          f"{args.data.stat().st_size:,} bytes of text + copies; evaluation set {len(frozen)} documents, "
          f"frozen in {freeze_s:.2f} s")
    for name, seconds in timings.items():
        print(f"  tokenize, {name:<26} {seconds:6.2f} s  {total / seconds:8.0f} docs/s")
    ratio = timings["evaluation set"] / timings["id-hash split (reference)"]
    print(f"  time ratio evaluation set / reference: {ratio:.3f} (best of {args.repeat})")
    print(f"  copies of evaluation documents in train: 0 of {2 * len(frozen)} (by id {len(frozen)}, by text {len(frozen)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
