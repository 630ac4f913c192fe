"""dataprep side by side with datatrove and datasketch, on one core, on real multilingual text.

    python bench/dataprep.py [--dir data/bench] [--mb 60] [--core 0] [--shape long|short]

Corpus: Debian documentation packages fetched as data (bench/dataprep_corpus.py: the
debian-handbook in all its languages, the Python 3 docs, man pages in 15 languages), a fixed
`--mb` subset of whole documents chosen by a hash of their ids, written once as JSONL shards that both
sides read. `--shape short` cuts the same subset into web-page-sized documents (`short_documents`:
runs of whole lines, the extracted text's paragraphs, up to a length drawn log-uniformly between 500
and 12,000 bytes): on the 60 MB subset 20,935 documents of 2.9 KB on average (median 1.9 KB) instead
of 5,713 of 10.5 KB, the same text, so that per-document costs weigh as they do on the web.
Everything runs pinned to one CPU core (sched_setaffinity, inherited by the subprocesses) with
OMP/MKL/OpenBLAS/numexpr threads fixed to 1. datatrove is installed by this script into its own
venv (DIR/venv-datatrove, datatrove[processing]==0.10.1 + spacy), never into the project's; it runs
through bench/datatrove_ref.py. Measured, each with the ratio ours/reference (> 1: ours is faster):

1. Gopher quality + repetition, chained (tokenmill's `quality` and `repetition` steps vs datatrove's
   GopherQualityFilter + GopherRepetitionFilter, English settings): docs/s and keep/drop agreement
   overall, per language group, and by each side's first failing rule.
2. MinHash signatures, 112 permutations, word 5-grams: tokenmill's MinHasher vs datasketch's
   MinHash.bulk on the same shingles (from text, and from prepared shingles).
3. The whole near-dedup, as a command (process start, reading, signing, clustering, writing):
   `tokenmill prepare --steps near_dedup` (the median of 3 runs) vs datatrove's four MinHash stages
   (signature, buckets, cluster, filter), wall time and peak RSS of each process; removed documents compared.
4. PII: tokenmill's `pii` step vs datatrove's PIIFormatter (e-mail and IP only).
5. The whole prepare stage (`tokenmill prepare`, default steps): MB/s per core and peak RSS, next to
   datatrove's nearest pipeline run the same way (ftfy, Gopher quality + repetition, the four MinHash
   stages, PII; see bench/datatrove_ref.py for what it leaves out).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported, here and in every subprocess

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Run as a script, this file's folder comes first on sys.path and its name would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

NEAR_DEDUP_RUNS = 3
DATATROVE = ["datatrove[processing]==0.10.1", "spacy", "orjson"]  # spacy: its English words; orjson: JsonlReader


def pin(core: int) -> None:
    os.sched_setaffinity(0, {core})


def subset(corpus: Path, directory: Path, megabytes: float) -> Path:
    """Whole documents in the order of a hash of their ids, up to `megabytes` of text (written once)."""
    out = directory / f"subset-{megabytes:g}mb"
    if (out / "done").exists():
        return out
    records = [json.loads(line) for f in sorted(corpus.glob("part-*.jsonl")) for line in open(f, encoding="utf-8")]
    records.sort(key=lambda r: hashlib.blake2b(r["id"].encode(), digest_size=8).digest())
    chosen, size = [], 0
    for record in records:
        if size >= megabytes * 1e6:
            break
        record["lang"] = record["lang"].split("-")[0].split("_")[0].lower()
        chosen.append(record)
        size += len(record["text"].encode("utf-8"))
    chosen.sort(key=lambda r: r["id"])
    return write_once(out, chosen)


def write_once(out: Path, records: list[dict]) -> Path:
    """`records` as JSONL shards of 1,000 in `out`, written in a temporary sibling and renamed into place
    with a `done` marker, so a killed run leaves no half-written `out` (and nothing is deleted here)."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    for shard in range(0, len(records), 1000):
        with open(tmp / f"part-{shard // 1000:03d}.jsonl", "w", encoding="utf-8") as f:
            for record in records[shard : shard + 1000]:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    (tmp / "done").touch()
    try:
        tmp.rename(out)
    except OSError:
        raise SystemExit(f"{out}: exists without a 'done' marker (an older, unfinished run?): remove it first") from None
    return out


SHORT_BYTES = (500, 12_000)  # a piece's target length in UTF-8 bytes, drawn log-uniformly
SHORT_MIN_BYTES = 200  # a shorter tail joins the piece before it


def short_documents(whole: Path) -> Path:
    """`whole` cut into shorter documents (`cut`), ids `ID#K`, every other field kept (written once)."""
    out = whole.with_name(whole.name + "-short")
    if (out / "done").exists():
        return out
    pieces = []
    for f in sorted(whole.glob("part-*.jsonl")):
        for line in open(f, encoding="utf-8"):
            record = json.loads(line)
            pieces += [{**record, "id": f"{record['id']}#{k}", "text": text} for k, text in enumerate(cut(record))]
    return write_once(out, pieces)


def cut(record: dict) -> list[str]:
    """A document's text as runs of whole lines (the extracted text's paragraphs), each up to a length
    drawn log-uniformly from SHORT_BYTES with a seed from the document's id (deterministic)."""
    import math
    import random

    draw = random.Random(hashlib.blake2b(record["id"].encode(), digest_size=8).digest())
    low, high = map(math.log, SHORT_BYTES)
    texts, current, size, target = [], [], 0, math.exp(draw.uniform(low, high))
    for line in record["text"].split("\n"):
        current.append(line)
        size += len(line.encode("utf-8")) + 1
        if size >= target:
            texts.append("\n".join(current))
            current, size, target = [], 0, math.exp(draw.uniform(low, high))
    if current:
        tail = "\n".join(current)
        if texts and len(tail.encode("utf-8")) < SHORT_MIN_BYTES:
            texts[-1] += "\n" + tail
        else:
            texts.append(tail)
    return texts


def datatrove_python(directory: Path) -> Path:
    venv = directory / "venv-datatrove"
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *DATATROVE], check=True)
        (venv / ".installed").touch()
    return python


# Runs a command and writes its peak RSS (KiB) to argv[1]. A child forked straight from this big bench
# process would report the bench's own RSS as its peak (ru_maxrss counts the memory before exec).
RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def measured_child(command: list[str], **kwargs) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, stdout) of one command, started through a small wrapper process."""
    with tempfile.TemporaryDirectory() as tmp:
        rss_file = Path(tmp) / "rss"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RSS_WRAPPER, str(rss_file), *map(str, command)],
                              capture_output=True, text=True, **kwargs)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stderr[-3000:]}")
        return seconds, int(rss_file.read_text()) // 1024, done.stdout


def line(name: str, seconds: float, docs: int, megabytes: float, extra: str = "") -> str:
    return f"  {name:<52} {seconds:8.2f} s {docs / seconds:8.0f} docs/s {megabytes / seconds:7.2f} MB/s {extra}"


def bench_gopher(docs, megabytes, inp, work, python, results):
    from dataprep.pipeline import build_steps
    from dataprep.config import PrepareConfig

    print("1. Gopher quality + repetition (chained)")
    ours: dict = {}
    quality, repetition = build_steps(["quality", "repetition"], PrepareConfig(),
                                      lambda doc, reason: ours.__setitem__(doc.id, reason))
    copies = [type(d)(d.id, d.text, dict(d.meta)) for d in docs]  # no view cached from an earlier part
    start = time.perf_counter()
    for doc in repetition.run(quality.run(copies)):  # the steps chained as the prepare pipeline runs them
        ours[doc.id] = None
    ours_s = time.perf_counter() - start
    print(line("tokenmill quality + repetition", ours_s, len(docs), megabytes))
    _, _, out = measured_child([str(python), str(HERE / "datatrove_ref.py"), "gopher", str(inp), str(work / "gopher")])
    ref = json.loads(out)
    theirs = ref["decisions"]
    print(line(f"datatrove {ref['version']} GopherQuality + GopherRepetition", ref["seconds"], len(docs), megabytes))
    ratio = ref["seconds"] / ours_s
    agree = sum((ours[i] is None) == (theirs[i] is None) for i in ours)
    lang = {d.id: d.meta.get("lang") for d in docs}
    en = [i for i in ours if lang[i] == "en"]
    agree_en = sum((ours[i] is None) == (theirs[i] is None) for i in en)
    print(f"    kept: tokenmill {sum(r is None for r in ours.values())}, datatrove {sum(r is None for r in theirs.values())}"
          f" of {len(docs)}; same keep/drop on {agree / len(ours):.1%} (English documents: {agree_en / max(len(en), 1):.1%})")
    print("    by tokenmill's first failing rule: documents | datatrove also drops")
    by_ours = Counter(r for r in ours.values() if r)
    for reason, count in by_ours.most_common():
        both = sum(1 for i, r in ours.items() if r == reason and theirs[i] is not None)
        print(f"      {reason:<40} {count:6d} | {both / count:6.1%}")
    print("    by datatrove's first failing rule: documents | tokenmill also drops")
    by_theirs = Counter(r for r in theirs.values() if r)
    for reason, count in by_theirs.most_common():
        both = sum(1 for i, r in theirs.items() if r == reason and ours[i] is not None)
        print(f"      {reason:<40} {count:6d} | {both / count:6.1%}")
    print(f"  ratio tokenmill/datatrove: {ratio:.1f}x")
    results["gopher"] = {"ours_s": ours_s, "datatrove_s": ref["seconds"], "ratio": ratio,
                         "agreement": agree / len(ours), "agreement_en": agree_en / max(len(en), 1),
                         "ours_reasons": dict(by_ours), "datatrove_reasons": dict(by_theirs)}


def bench_minhash(docs, megabytes, results):
    from datasketch import MinHash

    from dataprep.minhash import MinHasher, words

    print("2. MinHash signatures (112 permutations, word 5-grams)")
    texts = [d.text for d in docs]
    hasher = MinHasher(112, 5, 1)
    start = time.perf_counter()
    for lo in range(0, len(texts), 1024):
        hasher.sign(texts[lo : lo + 1024])
    ours_s = time.perf_counter() - start
    hashed = [hasher.shingle_hashes(texts[lo : lo + 1024]) for lo in range(0, len(texts), 1024)]
    start = time.perf_counter()
    for hashes, offsets in hashed:
        hasher.sign_hashes(hashes, offsets)
    ours_sign_s = time.perf_counter() - start
    total_shingles = sum(len(h) for h, _ in hashed)

    def shingles(text):
        w = words(text)
        return [" ".join(w[i : i + 5]).encode() for i in range(len(w) - 4)] or [" ".join(w).encode()]

    start = time.perf_counter()
    prepared = [shingles(t) for t in texts]
    shingle_s = time.perf_counter() - start
    start = time.perf_counter()
    for lo in range(0, len(prepared), 1024):
        MinHash.bulk(prepared[lo : lo + 1024], num_perm=112, seed=1)
    bulk_s = time.perf_counter() - start
    print(line("tokenmill MinHasher.sign (from text)", ours_s, len(docs), megabytes))
    print(line("datasketch shingling + MinHash.bulk (from text)", shingle_s + bulk_s, len(docs), megabytes))
    print(f"  ratio from text: {(shingle_s + bulk_s) / ours_s:.1f}x")
    print(f"  {'tokenmill sign_hashes (prepared shingle hashes)':<52} {ours_sign_s:8.2f} s ({total_shingles} shingles)")
    print(f"  {'datasketch MinHash.bulk (prepared shingles)':<52} {bulk_s:8.2f} s")
    print(f"  ratio on prepared shingles: {bulk_s / ours_sign_s:.1f}x")
    results["minhash"] = {"ours_from_text_s": ours_s, "datasketch_from_text_s": shingle_s + bulk_s,
                          "ratio_from_text": (shingle_s + bulk_s) / ours_s, "ours_sign_s": ours_sign_s,
                          "datasketch_bulk_s": bulk_s, "ratio_prepared": bulk_s / ours_sign_s,
                          "shingles": int(total_shingles)}


def tokenmill_command(*args: str) -> list[str]:
    """The `tokenmill` command line run by this Python (its module moved from tokenmill/ to pipeline/)."""
    module = "pipeline.cli"
    return [sys.executable, "-m", module, *args]


def bench_near_dedup(docs, megabytes, inp, work, python, results):
    import pyarrow.parquet as pq

    print("3. Whole near-dedup (one process each; wall time includes start-up, reading and writing)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = work / "near"
    # Three runs, the median counts: the first run of a command after the other parts is up to 0.2 s
    # slower (cold caches), a tenth of this one's time and nothing in datatrove's 80 s.
    runs = []
    for _ in range(NEAR_DEDUP_RUNS):
        shutil.rmtree(out, ignore_errors=True)
        runs.append(measured_child(tokenmill_command("prepare", "--steps", "near_dedup", "--in", str(inp),
                                                     "--out", str(out)), env=env, cwd=work)[:2])
    ours_s = sorted(s for s, _ in runs)[len(runs) // 2]
    ours_rss = max(r for _, r in runs)
    removed = {r["id"] for f in sorted((out / "removed").glob("part-*.parquet")) for r in
               pq.read_table(f, columns=["id"]).to_pylist()}
    stats = json.loads((out / "stats.json").read_text())
    shutil.rmtree(work / "minhash", ignore_errors=True)
    ref_s, ref_rss, ref_out = measured_child([str(python), str(HERE / "datatrove_ref.py"), "minhash", str(inp),
                                              str(work / "minhash")])
    ref = json.loads(ref_out)
    theirs = set(ref["removed"])
    print(line("tokenmill prepare --steps near_dedup", ours_s, len(docs), megabytes, f"peak RSS {ours_rss} MB"
               f" (median of {', '.join(f'{s:.2f}' for s, _ in runs)} s)"))
    print(line(f"datatrove {ref['version']} MinHash, 4 stages", ref_s, len(docs), megabytes, f"peak RSS {ref_rss} MB"))
    from dataprep.config import PrepareConfig
    from dataprep.dedup import NearDedup, NearDedupConfig
    from dataprep.pipeline import run as prepare_run

    start = time.perf_counter()
    in_process = sum(1 for _ in NearDedup(NearDedupConfig()).run(docs))
    core_s = time.perf_counter() - start
    stage_sum = sum(ref["stage_seconds"])
    print(f"    in-process, documents already in memory: tokenmill NearDedup.run {core_s:.1f} s (kept {in_process});"
          f" datatrove's stages ({', '.join(f'{s:.1f}' for s in ref['stage_seconds'])} s) sum to "
          f"{stage_sum:.1f} s: {stage_sum / core_s:.1f}x")
    # The same work as the command minus the process start and imports: reading the JSONL shards,
    # signing, clustering, writing kept and removed Parquet shards, stats, report and plots.
    io_runs = []
    for _ in range(NEAR_DEDUP_RUNS):
        shutil.rmtree(work / "near-in-process", ignore_errors=True)
        start = time.perf_counter()
        prepare_run(inp, work / "near-in-process", PrepareConfig(), ["near_dedup"], index="")
        io_runs.append(time.perf_counter() - start)
    io_s = sorted(io_runs)[len(io_runs) // 2]
    print(f"    in-process with reading and writing (dataprep.pipeline.run, steps near_dedup): {io_s:.2f} s (median of 3);"
          f" datatrove's stage sum {stage_sum:.1f} s: {stage_sum / io_s:.1f}x")
    print(f"    removed: tokenmill {len(removed)}, datatrove {len(theirs)}, both {len(removed & theirs)}; "
          f"state {stats['per_step']['near_dedup'].get('state_bytes_per_document')} bytes/document")
    print(f"  ratio tokenmill/datatrove: {ref_s / ours_s:.1f}x")
    results["near_dedup"] = {"ours_s": ours_s, "ours_runs_s": [s for s, _ in runs], "ours_rss_mb": ours_rss, "datatrove_s": ref_s,
                             "datatrove_stage_s": ref["stage_seconds"], "datatrove_rss_mb": ref_rss,
                             "ratio": ref_s / ours_s, "ours_in_process_s": core_s,
                             "ratio_in_process": stage_sum / core_s, "ours_in_process_io_s": io_s,
                             "ratio_in_process_io": stage_sum / io_s, "removed_ours": len(removed), "removed_datatrove": len(theirs),
                             "removed_both": len(removed & theirs),
                             "state_bytes_per_document": stats["per_step"]["near_dedup"].get("state_bytes_per_document")}


def bench_pii(docs, megabytes, inp, work, python, results):
    from dataprep.config import PrepareConfig
    from dataprep.pipeline import build_steps

    print("4. PII scrubbing")
    copies = [type(d)(d.id, d.text, dict(d.meta)) for d in docs]
    (step,) = build_steps(["pii"], PrepareConfig(), None)
    start = time.perf_counter()
    for _ in step.run(copies):
        pass
    ours_s = time.perf_counter() - start
    _, _, out = measured_child([str(python), str(HERE / "datatrove_ref.py"), "pii", str(inp), str(work / "pii")])
    ref = json.loads(out)
    print(line("tokenmill pii step", ours_s, len(docs), megabytes, f"replaced {dict(step.replaced)}"))
    print(line(f"datatrove {ref['version']} PIIFormatter (e-mail, IP)", ref["seconds"], len(docs), megabytes,
               f"documents changed {ref['changed']}"))
    print(f"  ratio tokenmill/datatrove: {ref['seconds'] / ours_s:.2f}x")
    results["pii"] = {"ours_s": ours_s, "datatrove_s": ref["seconds"], "ratio": ref["seconds"] / ours_s,
                      "replaced": dict(step.replaced)}


def bench_prepare(docs, megabytes, inp, work, python, results):
    print("5. Whole prepare stage (default steps, one process)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seconds, rss, _ = measured_child(tokenmill_command("prepare", "--in", str(inp), "--out", str(work / "prepare")),
                                     env=env, cwd=work)
    stats = json.loads((work / "prepare" / "stats.json").read_text())
    print(line("tokenmill prepare", seconds, len(docs), megabytes, f"peak RSS {rss} MB"))
    print(f"    kept {stats['documents_out']} of {stats['documents_in']}; removed {stats['removed']}")
    # datatrove's nearest pipeline (bench/datatrove_ref.py `prepare`: no language ID, URL filter,
    # decontamination or exact dedup, which it cannot run offline or has no counterpart for)
    ref_s, ref_rss, ref_out = measured_child([str(python), str(HERE / "datatrove_ref.py"), "prepare", str(inp),
                                              str(work / "datatrove-prepare")])
    ref = json.loads(ref_out)
    print(line(f"datatrove {ref['version']} ftfy+Gopher+MinHash+PII pipeline", ref_s, len(docs), megabytes,
               f"peak RSS {ref_rss} MB (kept {ref['kept']})"))
    print(f"  ratio tokenmill/datatrove: {ref_s / seconds:.1f}x; peak RSS {rss / ref_rss:.2f}x datatrove's")
    results["prepare"] = {"seconds": seconds, "mb_per_s": megabytes / seconds, "peak_rss_mb": rss,
                          "documents_out": stats["documents_out"], "removed": stats["removed"],
                          "datatrove_s": ref_s, "datatrove_stage_s": ref["stage_seconds"],
                          "datatrove_rss_mb": ref_rss, "datatrove_kept": ref["kept"], "ratio": ref_s / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "bench", help="cache of packages, corpus, venv")
    parser.add_argument("--mb", type=float, default=60, help="megabytes of text to run on (at least 50 for the record)")
    parser.add_argument("--core", type=int, default=0, help="the CPU core everything is pinned to")
    parser.add_argument("--only", default="gopher,minhash,near_dedup,pii,prepare", help="comma-separated parts")
    parser.add_argument("--shape", choices=("long", "short"), default="long",
                        help="whole documents, or the same text cut into web-page-sized ones (short_documents)")
    args = parser.parse_args(argv)
    pin(args.core)
    sys.path.append(str(HERE))  # after the project root: bench/dataprep.py must not shadow the package
    from dataprep_corpus import build

    from tokenmill.documents import read_documents

    directory = args.dir.resolve()
    inp = subset(build(directory), directory, args.mb)
    if args.shape == "short":
        inp = short_documents(inp)
    docs = list(read_documents(inp))
    megabytes = sum(d.nbytes for d in docs) / 1e6
    langs = Counter(d.meta.get("lang") for d in docs)
    print(f"corpus: {len(docs)} documents, {megabytes:.1f} MB, {len(langs)} languages "
          f"({', '.join(f'{k} {v}' for k, v in langs.most_common(6))}, ...); pinned to core {args.core}")
    python = datatrove_python(directory)
    results: dict = {"documents": len(docs), "megabytes": megabytes}
    parts = args.only.split(",")
    with tempfile.TemporaryDirectory(prefix="tokenmill-bench-", dir=directory) as tmp:
        work = Path(tmp)
        if "gopher" in parts:
            bench_gopher(docs, megabytes, inp, work, python, results)
        if "minhash" in parts:
            bench_minhash(docs, megabytes, results)
        if "near_dedup" in parts:
            bench_near_dedup(docs, megabytes, inp, work, python, results)
        if "pii" in parts:
            bench_pii(docs, megabytes, inp, work, python, results)
        if "prepare" in parts:
            bench_prepare(docs, megabytes, inp, work, python, results)
    results["shape"] = args.shape
    (directory / f"results-{args.shape}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
