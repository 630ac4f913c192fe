"""`tokenmill select`: decide again, with other thresholds, from the signals a prepare kept.

    tokenmill prepare --set prepare.keep_signals=true
    tokenmill select --in data/corpus --out data/corpus-strict --set prepare.quality.min_words=100

With `prepare.keep_signals: true` the filters write what they measured as columns (`quality_words`,
`fineweb_line_punct`, `language_identified`, `quality_score`, ...) on kept and removed documents, and
every document its place in the input (`position`). `select` puts the corpus's kept and removed
documents back in input order (one input file per original task, so the output is cut the same way)
and runs the steps the corpus was prepared with (its stats.json) over them with `replay_signals`:
language, quality (Gopher), fineweb and quality_model decide from the stored columns instead of
measuring; `pii` does not run again (every stored text, kept or removed, is already its output, and
scrubbing twice is not idempotent); every other step runs as before on the stored text. The result is
byte-identical to a fresh prepare with the new thresholds (tests/dataprep/test_select.py, default
steps) when the text every step measured is the stored text: true when `pii` runs before every step
that measures again (repetition, decontaminate, the dedup steps: the default order, `pii` third), and
when every document that reaches a replayed filter carries its signals (a document a stricter earlier
run removed before that filter has none: it is measured on its stored text). A corpus prepared with
`pii` after such a step is selected all the same, with a warning that it may differ.

Thresholds baked into a measurement (`fineweb.short_line_chars`, `language.max_chars`) cannot change.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from dataprep.distributed import POSITION
from dataprep.step import STORED
from tokenmill.documents import Document, read_documents
from tokenmill.errors import UserError

DECISION_COLUMNS = ("reason", "duplicate_of", "cluster_id", "cluster_size")  # decided again
REPLAYED = ("normalize", "language", "url_filter", "quality", "fineweb", "quality_model")  # same text or signals


def signal_columns() -> set[str]:
    """The columns replayed filters take back (dataprep.step.stored_signals)."""
    from dataprep.steps import fineweb, gopher_quality, language, quality_model

    return {*gopher_quality.SIGNALS, *fineweb.SIGNALS, language.IDENTIFIED, "lang_score", quality_model.SCORE}


def select(corpus: str | Path, out: str | Path, config: Any) -> dict[str, Any]:
    """Re-decide `corpus` (a prepare output with signals) under `config`; write `out` like prepare does."""
    from dataprep.pipeline import SCRUB_REMOVED, run

    corpus = Path(corpus)
    by_task = documents_by_task(corpus)
    config = copy.deepcopy(config)
    config.keep_signals = config.replay_signals = True
    steps = prepared_steps(corpus)
    measured_before_pii = [s for s in steps[: steps.index(SCRUB_REMOVED)] if s not in REPLAYED] if SCRUB_REMOVED in steps else []
    if measured_before_pii:
        print(f"tokenmill select: {corpus}: prepared with {SCRUB_REMOVED} after {', '.join(measured_before_pii)}: "
              "they measure the scrubbed text now, so the result may differ from a fresh prepare", file=sys.stderr)
    config.steps = [s for s in steps if s != SCRUB_REMOVED]
    with tempfile.TemporaryDirectory(prefix="tokenmill-select-", dir=Path(out).parent) as tmp:
        inputs = Path(tmp)
        for task, docs in sorted(by_task.items()):  # one file per original task, in task order
            # JSONL, not Parquet: a record has only its own fields, as the original input had (a Parquet
            # file would give every document every column, null where it had none)
            with open(inputs / f"{task}.jsonl", "w", encoding="utf-8") as lines:
                for doc in sorted(docs, key=lambda d: d.meta[POSITION]):
                    lines.write(json.dumps(doc.to_record(), ensure_ascii=False) + "\n")
        return run(inputs, out, config)


def prepared_steps(corpus: Path) -> list[str]:
    """The steps the corpus was prepared with (its stats.json): select runs the same ones."""
    try:
        return list(json.loads((corpus / "stats.json").read_text(encoding="utf-8"))["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{corpus}/stats.json: not a finished prepare output (no 'steps')") from None


def documents_by_task(corpus: Path) -> dict[str, list[Document]]:
    """The corpus's kept and removed documents without their earlier decisions, by input task."""
    if not (corpus / "removed").is_dir():
        raise UserError(f"{corpus}: not a prepare output (no removed/ directory)")
    by_task: dict[str, list[Document]] = defaultdict(list)
    signals = signal_columns()
    for path in (corpus, corpus / "removed"):
        if not any(path.glob("part-*.parquet")):
            continue
        for doc in read_documents(path):
            position = doc.meta.get(POSITION)
            if not isinstance(position, str):
                raise UserError(f"{path}: document {doc.id} has no '{POSITION}' column: prepare it with "
                                "--set prepare.keep_signals=true first")
            meta = {STORED + k if k in signals else k: v for k, v in doc.meta.items()
                    if v is not None and k not in DECISION_COLUMNS}
            by_task[position.split(":")[0]].append(Document(doc.id, doc.text, meta))
    if not by_task:
        raise UserError(f"{corpus}: no documents")
    return by_task
