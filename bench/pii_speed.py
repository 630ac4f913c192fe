"""PII scrubbing speed on real and generated text: the article benchmark's bodies, the generated phone
cases (tests/dataprep/pii_set/phones.py) and the labelled PII set, three times over; median of 5 passes.

    flock /tmp/tokenmill-bench.lock taskset -c 1 env OMP_NUM_THREADS=1 PYTHONPATH=. python bench/pii_speed.py LABEL

PYTHONPATH=/path/to/another/checkout runs that checkout's scrubber on the same texts (compare them).
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "article-extraction-benchmark"
DATA = DEFAULT_DATA if DEFAULT_DATA.is_dir() else Path("/work/shared/data/article-extraction-benchmark")
PII_SET = Path(__file__).resolve().parents[1] / "tests" / "dataprep" / "pii_set"


def texts() -> list[str]:
    truth = json.loads((DATA / "ground-truth.json").read_text())
    bodies = [v["articleBody"] for v in truth.values() if v.get("articleBody")]
    spec = importlib.util.spec_from_file_location("phones", PII_SET / "phones.py")
    phones = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(phones)
    labelled = [json.loads(line)["text"] for line in (PII_SET / "pii_labelled.jsonl").read_text().splitlines() if line]
    return (bodies + [c["text"] for c in phones.cases()] + labelled) * 3


def main() -> int:
    # PYTHONPATH picks the checkout whose scrubber runs; this directory's dataprep.py must not shadow it
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    from dataprep.steps.pii import PIIConfig, PIIReplacer

    corpus = texts()
    megabytes = sum(len(t.encode()) for t in corpus) / 1e6
    runs = []
    for _ in range(5):
        replacer = PIIReplacer(PIIConfig())
        start = time.perf_counter()
        for text in corpus:
            replacer.scrub(text, "en")
        runs.append(time.perf_counter() - start)
    label = sys.argv[1] if len(sys.argv) > 1 else ""
    print(f"{label}: {megabytes:.1f} MB, median {statistics.median(runs):.3f} s, {megabytes / statistics.median(runs):.2f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
