"""`tokenmill select` against a fresh `tokenmill prepare`, on real multilingual text at several sizes.

    python bench/select_vs_prepare.py [--dir data/bench] [--mb 15 30 60] [--core 1] [--repeat 3] \
        [--set prepare.quality.min_words=100] [--common prepare.steps=[...]]

Corpus: the Debian documentation corpus of bench/dataprep.py (bench/dataprep_corpus.py; the same
`--mb` subsets of whole documents, data/bench/subset-NNmb). At each size, the corpus is prepared once
with `prepare.keep_signals=true` and the default params (the signals corpus); then, `--repeat` times,
interleaved, each command its own process:

(a) `tokenmill prepare --set prepare.keep_signals=true --set KEY=V` from the input (a fresh prepare), and
(b) `tokenmill select --in SIGNALS --set KEY=V` from the signals corpus.

Prints the median wall times, the ratio select/prepare, and whether the two outputs' Parquet shards
(kept and removed) are byte-identical (else whether they hold the same documents, texts and reasons,
and which columns only one of them has). Then, for en, fa and pl, the documents each of the two
decisions (the signals corpus's, and the fresh prepare's with KEY=V) removes, by reason. `--common KEY=V`
is a setting of every run, the signals corpus's too (e.g. `prepare.steps=[...]`: select runs the steps the
corpus was prepared with). Everything is pinned to one core (sched_setaffinity, inherited by the
processes) with numeric threads 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Run as a script, this file's folder comes first on sys.path: bench/dataprep.py would shadow the dataprep
# package (as bench/scale.py does it).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402

ROOT = HERE.parent
THREADS = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")}
LANGUAGES = ("en", "fa", "pl")


def bench_module(name: str):
    """A module of bench/ by file (bench/dataprep.py's name would shadow the package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tokenmill(*args: str, out: Path) -> float:
    """Wall seconds of one `tokenmill ... --out OUT` command of this checkout (params.yaml), in its own process
    (OUT is new: every run writes its own directory)."""
    env = {**os.environ, **THREADS, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args, "--out", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"tokenmill {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def shards(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*.parquet"))}


def rows(directory: Path, removed: bool) -> list[dict]:
    import pyarrow.parquet as pq

    files = sorted((directory / "removed" if removed else directory).glob("*.parquet"))
    columns = ["id", "lang", *(["reason"] if removed else [])]
    return [r for f in files for r in pq.read_table(f, columns=columns).to_pylist()]


def documents(directory: Path) -> tuple[set[tuple], set[str]]:
    """(id, text, reason) of every kept and removed document, and the shards' columns (shard:column)."""
    import pyarrow.parquet as pq

    docs, columns = set(), set()
    for path in directory.rglob("*.parquet"):
        table = pq.read_table(path)
        columns |= {f"{path.relative_to(directory)}:{c}" for c in table.column_names}
        docs |= {(r["id"], r["text"], r.get("reason")) for r in table.to_pylist()}
    return docs, columns


def by_language(directory: Path) -> dict[str, tuple[int, Counter]]:
    """Per language (the language step's `lang`): documents in, and removed ones by reason."""
    kept, removed = Counter(r["lang"] for r in rows(directory, False)), rows(directory, True)
    result = {}
    for lang in LANGUAGES:
        reasons = Counter(r["reason"] for r in removed if r["lang"] == lang)
        result[lang] = (kept[lang] + sum(reasons.values()), reasons)
    return result


def print_languages(name: str, directory: Path) -> None:
    print(f"  removed by language and reason, {name}:")
    for lang, (total, reasons) in by_language(directory).items():
        n = sum(reasons.values())
        detail = ", ".join(f"{reason} {count}" for reason, count in reasons.most_common())
        print(f"    {lang}: {n} of {total} ({100 * n / max(total, 1):.1f} %){': ' + detail if detail else ''}")


def sets(*settings: str) -> list[str]:
    return [x for setting in settings for x in ("--set", setting)]


def bench_size(inp: Path, megabytes: float, changes: list[str], common: list[str], repeat: int, work: Path) -> None:
    base = ["prepare.keep_signals=true", *common]
    settings = sets(*base, *changes)
    signals = work / "signals"
    base_s = tokenmill("prepare", "--in", str(inp), *sets(*base), out=signals)
    times: dict[str, list[float]] = {"prepare": [], "select": []}
    for r in range(repeat):
        fresh, selected = work / f"fresh-{r}", work / f"selected-{r}"
        times["prepare"].append(tokenmill("prepare", "--in", str(inp), *settings, out=fresh))
        times["select"].append(tokenmill("select", "--in", str(signals), *settings, out=selected))
    prepare_s, select_s = statistics.median(times["prepare"]), statistics.median(times["select"])
    a, b = shards(fresh), shards(selected)
    if a == b:
        same = f"byte-identical ({len(a)} Parquet shards)"
    else:
        (docs_a, columns_a), (docs_b, columns_b) = documents(fresh), documents(selected)
        differ = sum(a.get(k) != b.get(k) for k in a.keys() | b.keys())
        same = (f"NOT byte-identical ({differ} of {len(a)} shards differ): same documents, texts and reasons: "
                f"{docs_a == docs_b} ({len(docs_a ^ docs_b)} (id, text, reason) differ); columns only in "
                f"prepare's {sorted(columns_a - columns_b)}, only in select's {sorted(columns_b - columns_a)}")
    print(f"{megabytes:.1f} MB: signals corpus {base_s:.2f} s; prepare {prepare_s:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times['prepare'])}), select {select_s:.2f} s "
          f"({', '.join(f'{t:.2f}' for t in times['select'])}): select/prepare {select_s / prepare_s:.3f}; "
          f"outputs {same}")
    print_languages("default params", signals)
    print_languages(" ".join(changes), fresh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=ROOT / "data" / "bench", help="cache of packages and corpus")
    parser.add_argument("--mb", type=float, nargs="+", default=[15, 30, 60], help="corpus sizes in megabytes of text")
    parser.add_argument("--core", type=int, default=1, help="the CPU core everything is pinned to")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--set", dest="changes", action="append", metavar="KEY=V",
                        help="the changed threshold(s) (default prepare.quality.min_words=100)")
    parser.add_argument("--common", action="append", default=[], metavar="KEY=V",
                        help="a setting of every run, the signals corpus's too (e.g. prepare.steps=[...])")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.core})
    corpus = bench_module("dataprep_corpus").build(args.dir.resolve())
    subset = bench_module("dataprep").subset
    changes = args.changes or ["prepare.quality.min_words=100"]
    print(f"select vs prepare with {' '.join(changes)} ({' '.join(args.common) or 'default params'}); "
          f"pinned to core {args.core}; medians of {args.repeat}")
    for mb in args.mb:
        inp = subset(corpus, args.dir.resolve(), mb)
        texts = (json.loads(line)["text"] for f in inp.glob("*.jsonl") for line in open(f, encoding="utf-8"))
        megabytes = sum(len(text.encode()) for text in texts) / 1e6
        with tempfile.TemporaryDirectory(prefix="tokenmill-select-", dir=args.dir) as tmp:
            bench_size(inp, megabytes, changes, args.common, args.repeat, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
