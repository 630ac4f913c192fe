"""How prepare, dedup and tokenize grow with the corpus: wall time per MB and peak RSS at several sizes.

    python bench/scale.py dedup-memory --docs 250000 1000000 [--code DIR]
    python bench/scale.py prepare [--sizes 1 4 16] [--dir data/bench] [--mb 60]
    python bench/scale.py same-output --code DIR --in CORPUS [--steps ...]

dedup-memory: synthetic corpora of 100-word documents (words drawn uniformly from 20,000 made-up
words, seeded; no duplicates; Parquet shards of 10,000 documents, written once under data/scale/),
each through `tokenmill dedup` (exact_dedup + near_dedup) in its own process: peak RSS and wall
time. `--code DIR` runs another checkout's code (e.g. the main branch, for a before/after).

prepare: the default `tokenmill prepare` then `tokenmill tokenize` on 1x, 4x and 16x a base corpus of
real text (bench/dataprep.py's `--mb` subset of the Debian documentation corpus,
bench/dataprep_corpus.py). Copy k > 0 of every base document is *varied*: with a seeded generator
per (document, copy), 1 word in VARY_EVERY is replaced by another word of the same document (the
language, script and length stay those of real text; word 5-gram Jaccard with the original ≈ 0.2,
far below the 0.7 threshold), and its id gets `~k`. A known share, PLANT_SHARE, of the copies is a
*planted near-duplicate* instead: 1 word in PLANT_EVERY replaced (Jaccard ≈ 0.9), id `~k~dup`;
each should be found: removed as a duplicate, or kept as the survivor its base document was removed
for (the longest document of a cluster is kept); a copy whose base was itself removed as a near-duplicate
of a third document can be too far from that one (a chain) and is then rightly kept. Reported: wall time
per MB and peak RSS of each stage and size, planted duplicates found.

same-output: `tokenmill dedup` and the default `tokenmill prepare` with this tree's code and with
`--code DIR`'s on the same corpus: every output file compared byte for byte.

Everything runs on one core (sched_setaffinity) with numeric threads fixed to 1.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

VOCABULARY = 20_000
WORDS_PER_DOCUMENT = 100
SHARD = 10_000
VARY_EVERY = 5  # a varied copy: 1 word in 5 replaced
PLANT_EVERY = 50  # a planted near-duplicate: 1 word in 50 replaced
PLANT_SHARE = 0.05  # of the copies

RSS_WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n"
    "sys.exit(code)\n"
)


def measured(command: list[str], code: Path, cwd: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS MB) of `command` run with `code` first on the path, in `cwd`."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    with tempfile.TemporaryDirectory() as tmp:
        rss = Path(tmp) / "rss"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RSS_WRAPPER, str(rss), *command], env=env, cwd=cwd,
                              capture_output=True, text=True)
        seconds = time.perf_counter() - start
        if done.returncode:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
        return seconds, int(rss.read_text()) // 1024


def tokenmill(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def synthetic(directory: Path, documents: int, seed: int = 0) -> Path:
    """`documents` distinct 100-word documents in Parquet shards (written once)."""
    import numpy as np

    from tokenmill.documents import Document, ShardWriter

    out = directory / f"synthetic-{documents}"
    if (out / "done").exists():
        return out / "documents"
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = ["".join(rng.choice(letters, int(n))) for n in rng.integers(3, 10, VOCABULARY)]
    with ShardWriter(out / "documents", SHARD) as writer:
        for lo in range(0, documents, SHARD):
            picks = rng.integers(0, VOCABULARY, (min(SHARD, documents - lo), WORDS_PER_DOCUMENT))
            writer.write_all(Document(f"doc-{lo + i:09d}", " ".join(words[w] for w in row)) for i, row in enumerate(picks))
    (out / "done").touch()
    return out / "documents"


def dedup_memory(args: argparse.Namespace) -> None:
    work = (Path(args.dir) / "scale").resolve()
    for documents in args.docs:
        corpus = synthetic(work, documents)
        out = work / f"dedup-out-{documents}"
        shutil.rmtree(out, ignore_errors=True)
        seconds, rss = measured(tokenmill("dedup", "--in", str(corpus), "--out", str(out)), Path(args.code), work)
        stats = json.loads((out / "stats.json").read_text())
        print(f"dedup {documents:>9,} documents: {seconds:7.1f} s, peak RSS {rss:6,} MB, "
              f"removed {stats['removed']} ({args.code})", flush=True)
        shutil.rmtree(out, ignore_errors=True)


def varied(text: str, every: int, seed: bytes) -> str:
    """`text` with 1 word in `every` replaced by another word of the same text (seeded)."""
    import random

    words = text.split(" ")
    rng = random.Random(seed)
    for i in range(rng.randrange(every), len(words), every):
        words[i] = words[rng.randrange(len(words))]
    return " ".join(words)


def scaled(base: Path, factor: int, directory: Path) -> tuple[Path, int]:
    """`factor` copies of the base corpus (the first as it is), JSONL shards; and the planted duplicates."""
    out = directory / f"scaled-{factor}x"
    planted_file = out / "planted"
    if planted_file.exists():
        return out / "corpus", int(planted_file.read_text())
    shutil.rmtree(out, ignore_errors=True)
    (out / "corpus").mkdir(parents=True)
    records = [json.loads(line) for f in sorted(base.glob("part-*.jsonl")) for line in open(f, encoding="utf-8")]
    planted = 0
    for k in range(factor):
        with open(out / "corpus" / f"part-{k:03d}.jsonl", "w", encoding="utf-8") as f:
            for record in records:
                copy = dict(record)
                if k:
                    seed = hashlib.blake2b(f"{record['id']}~{k}".encode(), digest_size=8).digest()
                    plant = int.from_bytes(seed, "big") / 2**64 < PLANT_SHARE
                    copy["text"] = varied(record["text"], PLANT_EVERY if plant else VARY_EVERY, seed)
                    copy["id"] = f"{record['id']}~{k}" + ("~dup" if plant else "")
                    planted += plant
                f.write(json.dumps(copy, ensure_ascii=False) + "\n")
    planted_file.write_text(str(planted))
    return out / "corpus", planted


def planted_found(prepared: Path) -> tuple[int, int]:
    """(planted duplicates whose cluster was found, planted duplicates removed for another reason). A
    cluster is found when the planted copy was removed as a duplicate, or kept as its cluster's survivor
    (the longest document) with its base document removed as a duplicate of it."""
    import pyarrow.parquet as pq

    removed = {}
    for shard in sorted((prepared / "removed").glob("part-*.parquet")):
        for row in pq.read_table(shard, columns=["id", "reason", "duplicate_of"]).to_pylist():
            removed[row["id"]] = (row["reason"], row["duplicate_of"])
    kept = [row["id"] for shard in sorted(prepared.glob("part-*.parquet"))
            for row in pq.read_table(shard, columns=["id"]).to_pylist()]
    duplicate = ("near_dedup", "exact_dedup")
    found = sum(reason in duplicate for doc, (reason, _) in removed.items() if doc.endswith("~dup"))
    found += sum(removed.get(doc.split("~")[0], ("", ""))[1] == doc for doc in kept if doc.endswith("~dup"))
    other = sum(reason not in duplicate for doc, (reason, _) in removed.items() if doc.endswith("~dup"))
    return found, other


def prepare_scaling(args: argparse.Namespace) -> None:
    sys.argv = [sys.argv[0]]
    from bench.dataprep import subset

    work = Path(args.dir).resolve()
    base = subset(work / "corpus", work, args.mb)
    base_mb = sum(len(json.loads(line)["text"].encode("utf-8")) for f in base.glob("part-*.jsonl")
                  for line in open(f, encoding="utf-8")) / 1e6
    for factor in args.sizes:
        corpus, planted = scaled(base, factor, work / "scale")
        prepared, tokens = work / "scale" / f"prepared-{factor}x", work / "scale" / f"tokens-{factor}x"
        shutil.rmtree(prepared, ignore_errors=True)
        shutil.rmtree(tokens, ignore_errors=True)
        mb = base_mb * factor
        p_s, p_rss = measured(tokenmill("prepare", "--in", str(corpus), "--out", str(prepared)), ROOT, work)
        t_s, t_rss = measured(tokenmill("tokenize", "--in", str(prepared), "--out", str(tokens), "--eval-set", ""),
                              ROOT, work)
        found, lost = planted_found(prepared)
        print(f"{factor:>3}x {mb:7.1f} MB: prepare {p_s:7.1f} s ({p_s / mb:.3f} s/MB, {mb / p_s:.2f} MB/s), peak RSS "
              f"{p_rss:,} MB; tokenize {t_s:6.1f} s ({t_s / mb:.3f} s/MB), peak RSS {t_rss:,} MB; planted "
              f"duplicates {planted:,}: {found:,} found as duplicates, {lost:,} removed by other steps", flush=True)


def tree_bytes(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def same_output(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="scale-same-", dir=args.dir)).resolve()
    inp = str(Path(args.inp).resolve())
    steps = ["--steps", args.steps] if args.steps else []
    for command in (["dedup"], ["prepare", *steps]):
        outputs = []
        for name, code in (("this", ROOT), ("other", Path(args.code))):
            out = work / f"{command[0]}-{name}"
            seconds, rss = measured(tokenmill(*command, "--in", inp, "--out", str(out)), code, work)
            print(f"{' '.join(command)} with {code}: {seconds:.1f} s, peak RSS {rss} MB", flush=True)
            outputs.append(tree_bytes(out))
        differ = sorted(k for k in outputs[0].keys() | outputs[1].keys() if outputs[0].get(k) != outputs[1].get(k))
        print(f"  {len(outputs[0])} files; differ: {differ or 'none'}", flush=True)
    shutil.rmtree(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="data/bench", help="where corpora and outputs go (default data/bench)")
    parser.add_argument("--core", type=int, default=0, help="CPU core to run on (default 0)")
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("dedup-memory")
    p.add_argument("--docs", type=int, nargs="+", default=[250_000, 1_000_000])
    p.add_argument("--code", default=str(ROOT), help="the checkout whose code runs (default: this one)")
    p = sub.add_parser("prepare")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--mb", type=float, default=60)
    p = sub.add_parser("same-output")
    p.add_argument("--code", required=True)
    p.add_argument("--in", dest="inp", required=True)
    p.add_argument("--steps", default="")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.core})
    {"dedup-memory": dedup_memory, "prepare": prepare_scaling, "same-output": same_output}[args.what](args)


if __name__ == "__main__":
    main()
