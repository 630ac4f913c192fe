"""tokenmill's own lm-evaluation-harness tasks, built from the frozen evaluation set (training/evalset.py).

Per language of the evaluation set (en, fa, pl, whatever `lang` its documents carry):
  tokenmill_next_sentence_<lang>  multiple choice: two sentences of a document, then its true next sentence
                                  among three sentences drawn from other documents of the same language
                                  (acc, acc_norm);
  tokenmill_last_word_<lang>      a sentence without its last word; the word (punctuation stripped) is the
                                  target, LAMBADA-style (acc: greedy decoding gives it; perplexity).
The task YAMLs are the templates in training/harness_tasks/, filled in (task name, data file, metadata) and
written beside their JSONL data. Everything is a function of the evaluation set's documents and TASKS_VERSION
(choices drawn by hashing document ids, no random state), and the directory records the set's digest: it is
rebuilt when the evaluation set changes, so a task's figures compare across runs exactly when the set does.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml

from tokenmill.stage import StageStats, atomic_directory, output_stage, write_json
from training.evalset import load_evalset

TASKS_VERSION = 1  # bump when the way items are made changes: the directory is then rebuilt
TEMPLATES = Path(__file__).with_name("harness_tasks")
STAGE = "harness-tasks"
MAX_ITEMS = 200  # per task: the harness's stderr is already small at this size
DISTRACTORS = 3
SENTENCE_END = re.compile(r"(?<=[.!?؟…])\s+")
TRAILING_PUNCTUATION = "\"'”’»«)]}.,!?;:؟،؛…—–-"


def sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE_END.split(text) if len(s.split()) >= 3]


def rank(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def next_sentence_items(docs: list, lang: str) -> list[dict]:
    """{"context", "choices", "label"}: the true sentence at a place fixed by the id's hash among the choices."""
    pool = [(d.id, s) for d in docs for s in sentences(d.text)]
    items = []
    for doc in sorted(docs, key=lambda d: rank("ns", lang, d.id)):
        own = sentences(doc.text)
        if len(own) < 3:
            continue
        at = 2 + int(rank("at", doc.id), 16) % (len(own) - 2)
        others = sorted((s for i, s in pool if i != doc.id and s != own[at]), key=lambda s: rank("d", doc.id, s))
        distractors = list(dict.fromkeys(others))[:DISTRACTORS]
        if len(distractors) < DISTRACTORS:
            continue
        label = int(rank("label", doc.id), 16) % (DISTRACTORS + 1)
        choices = distractors[:label] + [own[at]] + distractors[label:]
        items.append({"id": doc.id, "context": " ".join(own[at - 2:at]), "choices": choices, "label": label})
        if len(items) == MAX_ITEMS:
            break
    return items


def last_word_items(docs: list, lang: str) -> list[dict]:
    """{"context", "target"}: one sentence per document (its place fixed by the id's hash), last word cut off."""
    items = []
    for doc in sorted(docs, key=lambda d: rank("lw", lang, d.id)):
        own = [s for s in sentences(doc.text) if len(s.split()) >= 4]
        if not own:
            continue
        words = own[int(rank("at", doc.id), 16) % len(own)].split(" ")
        word = words[-1].strip(TRAILING_PUNCTUATION)
        if not word:
            continue
        items.append({"id": doc.id, "context": " ".join(words[:-1]), "target": " " + word})
        if len(items) == MAX_ITEMS:
            break
    return items


BUILDERS = {"next_sentence": next_sentence_items, "last_word": last_word_items}


def build_tasks(evalset: Path, out: Path) -> dict:
    """Write the local tasks of `evalset` into `out` (unless it already holds them for this very set and
    TASKS_VERSION); returns {"path", "eval_set", "tasks": {name: items}}."""
    source = load_evalset(evalset)
    out = Path(out)
    manifest = out / "tasks.json"
    if output_stage(out) == STAGE and manifest.is_file():
        built = json.loads(manifest.read_text(encoding="utf-8"))
        if built.get("eval_set") == source.digest and built.get("version") == TASKS_VERSION:
            return built
    by_lang: dict[str, list] = {}
    for doc in source.documents:
        by_lang.setdefault(str(doc.meta.get("lang") or "unknown"), []).append(doc)
    tasks = {}
    with atomic_directory(out, STAGE) as tmp:
        for lang in sorted(by_lang):
            for kind, builder in BUILDERS.items():
                items = builder(by_lang[lang], lang)
                if items:
                    name = f"tokenmill_{kind}_{lang}"
                    _write_task(tmp, out, name, kind, items, source.digest)
                    tasks[name] = len(items)
        built = {"path": out.as_posix(), "eval_set": source.digest, "version": TASKS_VERSION, "tasks": tasks}
        write_json(tmp / "tasks.json", built)
        StageStats(STAGE, documents_in=len(source.documents), documents_out=sum(tasks.values()),
                   extra=built).write(tmp)
    return built


def _write_task(tmp: Path, out: Path, name: str, kind: str, items: list[dict], digest: str) -> None:
    data = f"{name}.jsonl"
    with open(tmp / data, "w", encoding="utf-8") as f:
        for item in items:
            f.write(json.dumps(item, ensure_ascii=False) + "\n")
    config = yaml.safe_load((TEMPLATES / f"{kind}.yaml").read_text(encoding="utf-8"))
    config["task"] = name
    # the harness reads data_files from the working directory: the final (not the temporary) path, absolute
    config["dataset_kwargs"]["data_files"]["test"] = str((out / data).resolve())
    config["metadata"] = {**config.get("metadata", {}), "eval_set": digest, "tokenmill_tasks_version": TASKS_VERSION}
    (tmp / f"{name}.yaml").write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")


def add_harness_arguments(p) -> None:
    """`tokenmill evaluate`'s harness options (here, not in training/harness.py, so the CLI does not load lm_eval)."""
    p.add_argument("--tasks", help="comma-separated lm-evaluation-harness tasks to run instead of bits-per-byte "
                                   "(tokenmill: every local task of the evaluation set; any harness task name)")
    p.add_argument("--include-path", type=Path, help="a directory of extra harness task YAMLs")
    p.add_argument("--limit", type=float, help="at most N examples per task (a fraction if below 1)")
