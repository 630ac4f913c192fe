"""The datatrove side of bench/dataprep.py, run by the Python of its own venv (never imports tokenmill).

    venv-datatrove/bin/python bench/datatrove_ref.py gopher|minhash|pii|prepare INPUT_DIR WORK_DIR

Reads the same JSONL shards as the tokenmill side and prints one JSON object: seconds (the timed
part only: documents are read into memory first, except for minhash and prepare, whose stages read
the shards themselves as datatrove runs them) and the decisions to compare.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def load(inp: Path):
    from datatrove.data import Document

    docs = []
    for shard in sorted(inp.glob("*.jsonl")):
        for line in open(shard, encoding="utf-8"):
            record = json.loads(line)
            docs.append(Document(text=record["text"], id=record["id"], metadata={"lang": record.get("lang")}))
    return docs


def gopher(inp: Path, work: Path) -> dict:
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter

    docs = load(inp)
    quality, repetition = GopherQualityFilter(), GopherRepetitionFilter()
    quality.filter(docs[0])  # builds the word tokenizer once, outside the timing
    decisions = {}
    for step in (quality, repetition):  # record each verdict as the filters' own run() asks for it
        step.filter = recording(step.filter, decisions)
    start = time.perf_counter()
    for doc in repetition.run(quality.run(docs)):  # the filters chained as a datatrove pipeline runs them
        decisions[doc.id] = None
    return {"seconds": time.perf_counter() - start, "decisions": decisions}


def recording(check, decisions):
    def filter(doc):
        verdict = check(doc)
        if verdict is not True:
            decisions[doc.id] = verdict[1] if isinstance(verdict, tuple) else "removed"
        return verdict
    return filter


def minhash_stages(docs: Path, work: Path, filter_kwargs: dict, after: list) -> list[dict]:
    """datatrove's four MinHash stages over the JSONL shards in `docs` (FineWeb's 14 buckets x 8 hashes,
    5-grams); the filter stage re-reads `docs` and runs `after` on the survivors."""
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.pipeline.readers import JsonlReader

    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)
    return [
        dict(pipeline=[JsonlReader(str(docs), glob_pattern="*.jsonl"),
                       MinhashDedupSignature(output_folder=str(work / "signatures"), config=config)], tasks=1),
        dict(pipeline=[MinhashDedupBuckets(input_folder=str(work / "signatures"), output_folder=str(work / "buckets"),
                                           config=config)], tasks=config.num_buckets),
        dict(pipeline=[MinhashDedupCluster(input_folder=str(work / "buckets"), output_folder=str(work / "clusters"),
                                           config=config)], tasks=1),
        dict(pipeline=[JsonlReader(str(docs), glob_pattern="*.jsonl"),
                       MinhashDedupFilter(input_folder=str(work / "clusters"), **filter_kwargs), *after], tasks=1),
    ]


def run_stages(stages: list[dict], work: Path) -> list[float]:
    """Each stage on one worker, one after the other: the seconds of each."""
    from datatrove.executor import LocalPipelineExecutor

    times = []
    for number, stage in enumerate(stages):
        start = time.perf_counter()
        LocalPipelineExecutor(**stage, workers=1, logging_dir=str(work / f"logs-{number}"), skip_completed=False).run()
        times.append(time.perf_counter() - start)
    return times


def minhash(inp: Path, work: Path) -> dict:
    from datatrove.pipeline.writers import JsonlWriter

    writer = JsonlWriter(str(work / "removed"), compression=None)
    times = run_stages(minhash_stages(inp, work, {"exclusion_writer": writer}, []), work)
    removed = sorted(json.loads(line)["id"] for f in sorted((work / "removed").glob("*")) for line in open(f))
    return {"seconds": sum(times), "stage_seconds": times, "removed": removed}


def prepare(inp: Path, work: Path) -> dict:
    """datatrove's nearest pipeline to tokenmill's default prepare, stage by stage in this process:
    ftfy, Gopher quality + repetition, the four MinHash stages, then PII on what is left, written as
    uncompressed JSONL. Left out, as they cannot run offline or have no counterpart: language
    identification (fastText's model is downloaded from the Hub), the URL filter (tldextract fetches
    the public suffix list; the bench documents have no URLs), decontamination and exact dedup."""
    from datatrove.pipeline.filters import GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    filtered, out = work / "filtered", work / "out"
    stages = [dict(pipeline=[JsonlReader(str(inp), glob_pattern="*.jsonl"), FTFYFormatter(), GopherQualityFilter(),
                             GopherRepetitionFilter(), JsonlWriter(str(filtered), compression=None)], tasks=1)]
    stages += minhash_stages(filtered, work, {}, [PIIFormatter(), JsonlWriter(str(out), compression=None)])
    times = run_stages(stages, work)
    kept = sum(1 for f in out.glob("*") for _ in open(f))
    return {"seconds": sum(times), "stage_seconds": times, "kept": kept}


def pii(inp: Path, work: Path) -> dict:
    from datatrove.pipeline.formatters import PIIFormatter

    docs = load(inp)
    formatter = PIIFormatter()
    changed = 0
    start = time.perf_counter()
    for doc in docs:
        text = formatter.format(doc.text)
        changed += text != doc.text
    return {"seconds": time.perf_counter() - start, "changed": changed}


if __name__ == "__main__":
    mode, inp, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    work.mkdir(parents=True, exist_ok=True)
    from importlib.metadata import version

    result = {"gopher": gopher, "minhash": minhash, "pii": pii, "prepare": prepare}[mode](inp, work)
    result["version"] = version("datatrove")
    print(json.dumps(result))
