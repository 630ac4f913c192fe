"""The quality classifier on real pages: held-out figures, training time and scoring docs/s per core,
ours (dataprep/quality.py: hashed n-gram logistic regression) beside fastText's supervised mode.

Data: ../shared/data/article-extraction-benchmark (181 real news and blog pages with hand-labelled
article bodies). Positives: the article bodies, cut into documents of ~150 words. Negatives: the rest
of each page's text (menus, footers, related links, cookie banners), cut the same way. Held out by id
hash as `tokenmill quality train` does.

    flock /tmp/tokenmill-bench.lock taskset -c 1 env OMP_NUM_THREADS=1 python bench/quality.py [--fasttext DIR] \
        [--prepare-in CORPUS] [--skip-classifiers]

`--fasttext DIR`: a directory holding an unpacked fastText wheel (e.g. fasttext-wheel 0.9.2); its batch
`predict` is broken under numpy 2, so single predictions go through its C++ binding.

Then the default prepare is timed with and without the `quality_model` step (a multilingual model
trained on the benchmark's training part, so every document is scored; placed as the registry orders it,
after the Gopher rules; with threshold 0.5, and with threshold 0 so that it removes nothing and the later
steps see the same documents), median of 3 each, interleaved, on
`--prepare-in CORPUS` (a JSONL file or directory; default: the benchmark's documents four times over),
and the step's scoring alone in MB/s: the documents' views made fresh (the cost when no Gopher rule ran
before it) and already made (as at its place in the prepare).
`--skip-classifiers`: only that part.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "article-extraction-benchmark"  # beside the checkout
DATA = DEFAULT_DATA if DEFAULT_DATA.is_dir() else Path("/work/shared/data/article-extraction-benchmark")
WORDS_PER_DOCUMENT = 150


def chunks(text: str, prefix: str) -> list[tuple[str, str]]:
    words = text.split()
    return [(f"{prefix}-{i}", " ".join(words[i : i + WORDS_PER_DOCUMENT]))
            for i in range(0, len(words), WORDS_PER_DOCUMENT) if len(words[i : i + WORDS_PER_DOCUMENT]) >= 20]


def page_text(html: bytes) -> list[str]:
    import lxml.html

    tree = lxml.html.fromstring(html)
    for bad in tree.xpath("//script|//style|//noscript"):
        bad.drop_tree()
    return [line.strip() for line in tree.text_content().splitlines() if line.strip()]


def dataset():
    from dataprep.quality import Example

    truth = json.loads((DATA / "ground-truth.json").read_text())
    examples = []
    for key, record in sorted(truth.items()):
        body = record.get("articleBody") or ""
        examples += [Example(i, t, True, "en") for i, t in chunks(body, f"{key}-article")]
        boiler = "\n".join(line for line in page_text(gzip.decompress((DATA / "html" / f"{key}.html.gz").read_bytes()))
                           if line not in body)
        examples += [Example(i, t, False, "en") for i, t in chunks(boiler, f"{key}-page")]
    return examples


def measure(name, fit, score, train, test):
    start = time.perf_counter()
    model = fit(train)
    train_s = time.perf_counter() - start
    texts = [e.text for e in test]
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        scores = score(model, texts)
        runs.append(time.perf_counter() - start)
    from dataprep.quality import figures as heldout_figures

    figures = heldout_figures(scores, np.array([e.label for e in test]))
    docs_s = len(texts) / statistics.median(runs)
    print(f"{name:<34} AUC {figures['roc_auc']:.4f}  P {figures['precision']:.3f}  R {figures['recall']:.3f}  "
          f"train {train_s:.2f} s  score {docs_s:,.0f} docs/s per core")
    return {"roc_auc": figures["roc_auc"], "precision": figures["precision"], "recall": figures["recall"],
            "train_s": train_s, "docs_per_s": docs_s}


def ours(train):
    from dataprep.quality import QualityTrainConfig, fit

    return fit(train, QualityTrainConfig())


def fasttext_fit(train, ngrams=2):
    import tempfile

    import fasttext

    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        for e in train:
            f.write(f"__label__{int(e.label)} {' '.join(e.text.lower().split())}\n")
    return fasttext.train_supervised(f.name, dim=16, epoch=10, lr=0.5, wordNgrams=ngrams, minCount=2, bucket=1 << 17,
                                     thread=1, seed=1, verbose=0)


def fasttext_score(model, texts):
    out = []
    for t in texts:
        pairs = dict((label, p) for p, label in model.f.predict(" ".join(t.lower().split()) + "\n", 2, 0.0, "strict"))
        out.append(pairs.get("__label__1", 0.0))
    return np.array(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fasttext", type=Path, help="directory of an unpacked fastText wheel")
    parser.add_argument("--prepare-in", type=Path, help="corpus for the prepare timings (default: the documents x4)")
    parser.add_argument("--skip-classifiers", action="store_true", help="only the prepare timings")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"{DATA} is not present")
        return 1
    # the script's own directory comes first on sys.path, and bench/dataprep.py would shadow the package
    sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
    from dataprep.quality import held_out

    examples = dataset()
    train = [e for e in examples if not held_out(e.id, 0.2)]
    test = [e for e in examples if held_out(e.id, 0.2)]
    print(f"{len(examples)} documents ({sum(e.label for e in examples)} article, "
          f"{sum(not e.label for e in examples)} boilerplate), {len(test)} held out")
    if args.skip_classifiers:
        print(json.dumps({"prepare": bench_prepare(examples, train, args.prepare_in)}))
        return 0
    results = {"ours": measure("hashed n-gram logistic regression", ours, lambda m, t: m.score(t), train, test)}
    if args.fasttext:
        sys.path.insert(0, str(args.fasttext))
        results["fasttext"] = measure("fastText supervised (dim 16, 2-grams)", fasttext_fit, fasttext_score, train, test)
        results["fasttext_unigrams"] = measure("fastText supervised (dim 16, words)", lambda t: fasttext_fit(t, 1),
                                               fasttext_score, train, test)
    results["prepare"] = bench_prepare(examples, train, args.prepare_in)
    print(json.dumps(results))
    return 0


def bench_prepare(examples, train_part, corpus: Path | None = None) -> dict:
    """The default prepare with and without the quality_model step (a model trained on the train part), and
    the step's scoring alone."""
    import tempfile

    from dataprep import registry
    from dataprep.config import PrepareConfig
    from dataprep.pipeline import run
    from dataprep.quality import QualityTrainConfig
    from dataprep.quality import train as train_model

    with tempfile.TemporaryDirectory(prefix="tokenmill-bench-quality-") as tmp:
        tmp = Path(tmp)
        if corpus is None:
            corpus = tmp / "docs.jsonl"
            corpus.write_text("".join(json.dumps({"id": e.id, "text": e.text}) + "\n" for e in examples * 4))
        train_model(train_part, tmp / "model", QualityTrainConfig())
        alone = step_alone(corpus, tmp / "model")
        # with_quality_model_keep_all: threshold 0, every document scored and kept, so the steps after it
        # get the same documents as without it (the step's own cost)
        variants = {"default": ([], 0.5), "with_quality_model": (["quality_model"], 0.5),
                    "with_quality_model_keep_all": (["quality_model"], 0.0)}
        runs: dict[str, list[float]] = {name: [] for name in variants}
        for i in range(3):  # interleaved: a change in the machine's load falls on all
            for name, (extra, threshold) in variants.items():
                config = PrepareConfig()
                # in the registry's order: quality_model (47) after the Gopher rules, before decontaminate and dedup
                config.steps = [s for s in registry.steps() if s in config.steps + extra]
                config.quality_model.model = str(tmp / "model")
                config.quality_model.threshold = threshold
                start = time.perf_counter()
                run(corpus, tmp / f"{name}-{i}", config)
                runs[name].append(time.perf_counter() - start)
        timings = {name: statistics.median(times) for name, times in runs.items()}
        timings["step_share"] = step_share(corpus, tmp, config)  # config: the last variant, keep_all
        timings.update({f"{name}_runs": times for name, times in runs.items()})
        overhead = timings["with_quality_model"] / timings["default"] - 1
        keep_all = timings["with_quality_model_keep_all"] / timings["default"] - 1
        print(f"prepare of {alone['documents']} documents ({alone['mb']:.2f} MB, {corpus}): default "
              f"{timings['default']:.2f} s ({alone['mb'] / timings['default']:.2f} MB/s), with quality_model "
              f"{timings['with_quality_model']:.2f} s ({overhead:+.1%}), with quality_model keeping all "
              f"{timings['with_quality_model_keep_all']:.2f} s ({keep_all:+.1%}); medians of 3")
        share = timings["step_share"]
        print(f"inside one prepare with quality_model keeping all: the step's scoring {share['step_s']:.2f} s of "
              f"{share['total_s']:.2f} s ({share['step_s'] / (share['total_s'] - share['step_s']):+.1%} over the rest)")
        print(f"quality_model scoring alone, views made fresh: {alone['seconds']:.2f} s, {alone['mb_per_s']:.1f} MB/s, "
              f"{alone['documents'] / alone['seconds']:,.0f} documents/s; views already made (as after the Gopher "
              f"rules): {alone['warm_seconds']:.2f} s, {alone['mb'] / alone['warm_seconds']:.1f} MB/s (medians of 3)")
        return {**alone, **timings, "overhead": overhead, "overhead_keep_all": keep_all}


def step_share(corpus: Path, tmp: Path, config) -> dict:
    """One prepare (`config`: with quality_model) timed whole and inside the step's scoring (its batches):
    the step's cost as a share measured in one run, which the machine's load moves less than a
    difference of two runs."""
    from dataprep.pipeline import run
    from dataprep.steps.quality_model import QualityModelFilter

    inside = [0.0]
    scored_batch = QualityModelFilter.scored_batch

    def timed(self, model, batch):
        start = time.perf_counter()
        try:
            return scored_batch(self, model, batch)
        finally:
            inside[0] += time.perf_counter() - start

    QualityModelFilter.scored_batch = timed
    try:
        start = time.perf_counter()
        run(corpus, tmp / "timed", config)  # in this process (no Dask client by default)
        total = time.perf_counter() - start
    finally:
        QualityModelFilter.scored_batch = scored_batch
    return {"step_s": inside[0], "total_s": total}


def step_alone(corpus: Path, model: Path) -> dict:
    """The step's scoring of the corpus's documents in memory (read once, views made afresh each run)."""
    from dataprep.steps.quality_model import QualityModelConfig, QualityModelFilter
    from tokenmill.documents import Document, read_documents

    records = [(d.id, d.text, d.meta) for d in read_documents(corpus)]
    mb = sum(len(text.encode("utf-8")) for _, text, _ in records) / 1e6
    runs, warm = [], []
    for _ in range(3):
        docs = [Document(i, text, dict(meta)) for i, text, meta in records]
        for times in (runs, warm):  # the second time the documents' views are there
            step = QualityModelFilter(QualityModelConfig(model=str(model)))
            start = time.perf_counter()
            for _ in step.scored_documents(docs):
                pass
            times.append(time.perf_counter() - start)
    seconds = statistics.median(runs)
    return {"documents": len(records), "mb": mb, "seconds": seconds, "mb_per_s": mb / seconds,
            "warm_seconds": statistics.median(warm)}


if __name__ == "__main__":
    sys.exit(main())
