"""`tokenmill ingest` (crawler/ingest.py) next to datatrove's WarcReader + Trafilatura on one WARC, one core each.

    python bench/ingest.py [WORK_DIR] [--datatrove-python PATH] [--copies N]

The WARC: the 181 real pages of the article-extraction benchmark (../shared/data), each written
`--copies` times (default 12: 2,172 records) under its own URL, as Common Crawl writes a WARC
(warcio, one gzip member per record, WARC-Identified-Payload-Type). Both sides read the
same file on core 0 (`taskset`-like affinity, one thread each; datatrove's extraction sandbox
process inherits the core), in processes of their own, 3 interleaved rounds, medians; the timed
part is reading the WARC to extracted texts (ours also writes its Parquet output). Extraction
quality: the F1 of each side's texts against the benchmark's ground truth, over every record
(bench/extraction.py's measure; a page a side drops counts as empty).

Also the WARC framing alone (records out of the file, payload read, nothing extracted) by warcio,
fastwarc and crawler/warc.py, which is how the reader was chosen (bench/README.md, "Ingest").
datatrove (datatrove[processing,io]==0.10.1) and fastwarc live in their own venv, never the project's:
made under WORK_DIR/venv-datatrove unless --datatrove-python names one.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

# ../shared/data beside the repository (or beside a worktree's parent)
DATA = next((base / "shared" / "data" / "article-extraction-benchmark" for base in (ROOT.parent, ROOT.parent.parent)
             if (base / "shared" / "data" / "article-extraction-benchmark").is_dir()),
            ROOT.parent / "shared" / "data" / "article-extraction-benchmark")
DATATROVE = ["datatrove[processing,io]==0.10.1", "orjson", "fastwarc", "lxml_html_clean"]  # lxml_html_clean: trafilatura's jusText needs it
ROUNDS = 3
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}

OURS = """
import json, sys, time
from pathlib import Path
from crawler.config import CrawlConfig
from crawler.ingest import ingest
from tokenmill.documents import read_documents
import crawler.extract  # loaded before the clock starts, as datatrove's imports are
start = time.perf_counter()
ingest([sys.argv[1]], Path(sys.argv[2]), CrawlConfig())
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "texts": {d.meta["url"]: d.text for d in read_documents(Path(sys.argv[2]) / "documents")}}))
"""

THEIRS = """
import json, sys, time
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.extractors import Trafilatura
import trafilatura
reader = WarcReader(sys.argv[1], glob_pattern="*.warc.gz")
extractor = Trafilatura()
start = time.perf_counter()
texts = {doc.metadata["url"]: doc.text for doc in extractor.run(reader.run(None, 0, 1), 0, 1)}
print(json.dumps({"seconds": time.perf_counter() - start, "texts": texts}))
"""

FRAMING = """
import json, sys, time
sys.path.insert(0, sys.argv[2])
from warcio.archiveiterator import ArchiveIterator as WarcioIterator
from fastwarc.warc import ArchiveIterator as FastIterator
from crawler.warc import records

def warcio(f):
    return sum(len(r.content_stream().read()) for r in WarcioIterator(f))
def fastwarc(f):
    return sum(len(r.reader.read()) for r in FastIterator(f))
def ours(f):
    return sum(len(r.block) for r in records(f, 1 << 30))
result = {}
for name, read in [("warcio", warcio), ("fastwarc", fastwarc), ("tokenmill", ours)]:
    times = []
    for _ in range(3):
        with open(sys.argv[1], "rb") as f:
            start = time.perf_counter(); read(f); times.append(time.perf_counter() - start)
    result[name] = min(times)
print(json.dumps(result))
"""


def make_warc(path: Path, copies: int) -> tuple[dict[str, str], int]:
    """The benchmark's pages as a WARC written as Common Crawl writes them (warcio, a gzip member per
    record, the WARC-Identified-Payload-Type that datatrove's reader filters on); (URL -> ground
    truth, HTML bytes)."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    truth = json.loads((DATA / "ground-truth.json").read_text(encoding="utf-8"))
    answers, html_bytes = {}, 0
    with open(path, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for copy in range(copies):
            for key, item in sorted(truth.items()):
                html = gzip.decompress((DATA / "html" / f"{key}.html.gz").read_bytes())
                url = f"http://copy{copy}.bench.localhost/{key}.html"
                http = StatusAndHeaders("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(html)))],
                                        protocol="HTTP/1.1")
                writer.write_record(writer.create_warc_record(
                    url, "response", payload=BytesIO(html), http_headers=http,
                    warc_headers_dict={"WARC-Identified-Payload-Type": "text/html"}))
                answers[url] = item["articleBody"]
                html_bytes += len(html)
    return answers, html_bytes


def datatrove_python(work: Path) -> Path:
    venv = work / "venv-datatrove"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DATATROVE], check=True)
        (venv / ".installed").touch()
    return python


def pinned(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    if done.returncode:
        raise RuntimeError(f"{command[:3]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def f1(texts: dict[str, str], answers: dict[str, str]) -> float:
    sys.path.insert(0, str(HERE))
    from extraction import overlap, score  # bench/extraction.py

    return score([overlap(texts.get(url) or "", truth) for url, truth in answers.items()])["f1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", nargs="?", type=Path, default=Path(tempfile.gettempdir()) / "tokenmill-bench-ingest")
    parser.add_argument("--datatrove-python", type=Path)
    parser.add_argument("--copies", type=int, default=12)
    args = parser.parse_args()
    if not (DATA / "ground-truth.json").exists():
        print(f"{DATA}: benchmark data not found", file=sys.stderr)
        return 1
    args.work.mkdir(parents=True, exist_ok=True)
    warcs = args.work / "warcs"
    warcs.mkdir(exist_ok=True)
    warc = warcs / "bench.warc.gz"
    answers, html_bytes = make_warc(warc, args.copies)
    megabytes = warc.stat().st_size / 1e6
    python = args.datatrove_python or datatrove_python(args.work)
    print(f"WARC: {len(answers)} records, {megabytes:.1f} MB gzipped ({html_bytes / 1e6:.1f} MB of HTML), core 0, "
          f"{ROUNDS} rounds interleaved")
    framing = pinned([str(python), "-c", FRAMING, str(warc), str(ROOT)])
    for name, seconds in framing.items():
        print(f"  framing only, {name:<10} {seconds:6.3f} s  {megabytes / seconds:7.1f} MB/s")
    ours, theirs = [], []
    for _ in range(ROUNDS):
        ours.append(pinned([sys.executable, "-c", OURS, str(warc), str(args.work / "out")]))
        theirs.append(pinned([str(python), "-c", THEIRS, str(warcs)]))
    results = {}
    for name, runs in [("tokenmill ingest", ours), ("datatrove WarcReader + Trafilatura", theirs)]:
        seconds = statistics.median(r["seconds"] for r in runs)
        quality = f1(runs[0]["texts"], answers)
        results[name] = {"seconds": seconds, "mb_per_s": megabytes / seconds, "f1": quality, "documents": len(runs[0]["texts"])}
        print(f"  {name:<36} {seconds:7.2f} s  {megabytes / seconds:6.2f} MB/s of WARC  "
              f"{html_bytes / 1e6 / seconds:6.2f} MB/s of HTML  {len(answers) / seconds:6.1f} records/s  "
              f"F1 {quality:.3f}  ({len(runs[0]['texts'])} documents)")
    ratio = results["datatrove WarcReader + Trafilatura"]["seconds"] / results["tokenmill ingest"]["seconds"]
    print(f"  ratio tokenmill/datatrove: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
