"""Near-dedup precision and recall on real text with near-duplicates made the ways the web makes them.

    PYTHONPATH=$PWD .venv/bin/python bench/near_dedup_quality.py [--seeds 3] [--set near_dedup.KEY=V ...]

Base texts are real: the 181 hand-labelled article bodies of ../shared/data/article-extraction-benchmark
and passages of ../shared/data/tinyshakespeare (the script exits 0 with a note when they are absent).
From each base text it makes what a crawl meets (seeded):
- copies syndicated with another site's header and footer lines, re-typed punctuation and case;
- revisions: a few words changed, a sentence dropped, an update paragraph appended, a teaser cut short;
- revision chains: each version edited from the previous one, so the first and last share less than
  either shares with its neighbour (what joins unrelated documents through a chain);
- hard negatives: different short texts in the same long site template, and texts quoting a long
  passage of another.

The truth is the one the step's docstring promises, computed exactly on the shingles: documents A and B
are near-duplicates when the Jaccard similarity of their word 5-gram sets is at least the threshold.
- precision: of the documents removed, the share whose exact Jaccard with the survivor they name
  (`duplicate_of`) reaches the threshold;
- recall: of the documents that exact greedy clustering removes (every document, longest first, is
  removed when a kept document reaches the threshold with it), the share the step removes.
Pairs are only compared within a base text's family and the texts its documents borrow from (other
families share no 5-gram beyond chance); a grey band of +-0.03 around the threshold counts either way.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataprep.dedup import NearDedup, NearDedupConfig  # noqa: E402
from dataprep.minhash import band_edges, band_keys, jaccard_sorted  # noqa: E402
from tokenmill.documents import Document  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
GREY = 0.03

HEADERS = [
    "Home News World Business Technology Science Health Sport Opinion Subscribe Sign in",
    "Skip to main content Menu Search Latest stories Most read Newsletters Podcasts",
    "The Daily Record Local news weather and events since 1898 Advertise with us",
    "Posted in Uncategorized Tags news blog archive Leave a comment Share on Facebook Share on Twitter",
]
FOOTERS = [
    "Copyright 2024 All rights reserved Privacy policy Terms of use Cookie settings Contact us About us",
    "Related articles You may also like Sponsored content Follow us on social media for the latest news",
    "This article was originally published by our partners and is republished here with permission",
    "Comments are closed Join the conversation on our forum Report an error Send us a tip",
]


def base_texts() -> list[str]:
    """Real texts: article bodies (at least 60 words) and tinyshakespeare passages of 80 to 900 words."""
    texts: list[str] = []
    truth = SHARED / "article-extraction-benchmark" / "ground-truth.json"
    if truth.is_file():
        texts += [v["articleBody"] for v in json.loads(truth.read_text(encoding="utf-8")).values()
                  if len(v["articleBody"].split()) >= 60]
    play = SHARED / "tinyshakespeare" / "input.txt"
    if play.is_file():
        lines = play.read_text(encoding="utf-8").splitlines()
        rng, at = random.Random(0), 0
        while at < len(lines):
            size = rng.choice([12, 25, 50, 100])
            texts.append("\n".join(lines[at : at + size]))
            at += size
    return [t for t in texts if len(t.split()) >= 60]


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]


def change_words(text: str, rate: float, rng: random.Random) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, int(len(words) * rate))):
        words[i] = rng.choice(["the", "a", "new", "said", "also", "more", "this", "today"])
    return " ".join(words)


def revise(text: str, rng: random.Random, pool: list[str]) -> tuple[str, list[int]]:
    """One edit a publisher makes; returns the new text and the pool texts it borrowed from."""
    kind = rng.choice(["words", "drop", "append", "cut", "restyle"])
    if kind == "words":
        return change_words(text, rng.uniform(0.003, 0.02), rng), []
    if kind == "drop":
        parts = sentences(text)
        if len(parts) > 4:
            del parts[rng.randrange(len(parts))]
        return " ".join(parts), []
    if kind == "append":
        source = rng.randrange(len(pool))
        extra = " ".join(pool[source].split()[: rng.randint(10, 40)])
        return text + "\n\nUpdate: " + extra, [source]
    if kind == "cut":
        words = text.split(" ")
        return " ".join(words[: int(len(words) * rng.uniform(0.85, 0.97))]), []
    return re.sub(r"[,;:]", "", text.upper() if rng.random() < 0.5 else text.replace("\n", " ")), []


def syndicate(text: str, rng: random.Random) -> str:
    return f"{rng.choice(HEADERS)}\n{text}\n{rng.choice(FOOTERS)}"


def make_set(seed: int) -> tuple[list[Document], dict[str, int], dict[int, list[int]]]:
    """Documents, each one's family, and per family the (pool) families it borrowed text from."""
    rng = random.Random(seed)
    texts = base_texts()
    rng.shuffle(texts)
    pool, bases = texts[: len(texts) // 3], texts[len(texts) // 3 :]
    docs: list[Document] = []
    family_of: dict[str, int] = {}
    borrowed: dict[int, list[int]] = defaultdict(list)

    pool_family = lambda source: len(bases) + source  # noqa: E731

    def add(family: int, text: str) -> None:
        doc_id = f"s{seed}-d{len(docs):05d}"
        docs.append(Document(doc_id, text))
        family_of[doc_id] = family

    for family, text in enumerate(bases):
        add(family, text)
        shape = rng.random()
        if shape < 0.25:  # unique
            continue
        if shape < 0.45:  # syndicated copies
            for _ in range(rng.randint(1, 4)):
                add(family, syndicate(text, rng))
        elif shape < 0.75:  # independent revisions of the original
            for _ in range(rng.randint(1, 4)):
                revised, used = revise(text, rng, pool)
                borrowed[family] += [pool_family(s) for s in used]
                add(family, revised)
        elif shape < 0.9:  # a revision chain
            current = text
            for _ in range(rng.randint(3, 6)):
                current, used = revise(current, rng, pool)
                current, more = revise(current, rng, pool)
                borrowed[family] += [pool_family(s) for s in used + more]
                add(family, current)
        else:  # a quotation of a pool text: shares a long passage with it, is not a copy of it
            source = rng.randrange(len(pool))
            quoted = pool[source].split()
            add(family, text + "\n" + " ".join(quoted[: rng.randint(len(quoted) // 3, len(quoted))]))
            borrowed[family].append(pool_family(source))
    # Hard negatives: short different texts in one long template, and the pool texts themselves.
    template = " ".join(HEADERS + FOOTERS)
    short = [t for t in pool if len(t.split()) < 150]
    for i, text in enumerate(pool):
        add(pool_family(i), text)
    for text in short[:40]:  # one family: compared with each other
        add(len(bases) + len(pool), f"{template}\n{text}\n{template}")
    rng.shuffle(docs)
    return docs, family_of, {f: sorted(set(p)) for f, p in borrowed.items()}


def evaluate(docs: list[Document], family_of: dict[str, int], borrowed: dict[int, list[int]], config: NearDedupConfig,
             removed_ids: dict[str, str]) -> dict[str, float]:
    """Precision and recall of `removed_ids` (removed document -> the survivor it names) against exact Jaccard."""
    arrays = NearDedup(config).hasher.shingle_arrays([d.text for d in docs])
    shingles = {d.id: a for d, a in zip(docs, arrays)}
    threshold = config.threshold

    def similar(a: str, b: str) -> float:
        return jaccard_sorted(shingles[a], shingles[b])

    # Exact greedy reference: longest first (ties: smallest id), as the step ranks.
    groups: dict[int, list[str]] = defaultdict(list)
    for d in docs:
        groups[family_of[d.id]].append(d.id)
    length = {d.id: len(d.text) for d in docs}
    should, sure_not = set(), set()
    for family, members in groups.items():
        related = list(members)
        for source in borrowed.get(family, []):
            related += groups[source]
        kept: list[str] = []
        for doc in sorted(set(related), key=lambda i: (-length[i], i)):
            best = max((similar(doc, k) for k in kept), default=0.0)
            if best >= threshold:
                should.add(doc)
            elif best < threshold - GREY:
                sure_not.add(doc)
            kept.append(doc) if best < threshold else None
    right = sum(similar(doc, survivor) >= threshold - GREY for doc, survivor in removed_ids.items())
    found = sum(doc in removed_ids for doc in should)
    return {"documents": len(docs), "removed": len(removed_ids), "should": len(should),
            "precision": right / max(len(removed_ids), 1), "recall": found / max(len(should), 1)}


def run_step(docs: list[Document], config: NearDedupConfig) -> tuple[dict[str, str], float]:
    removed: dict[str, str] = {}
    step = NearDedup(config, on_remove=lambda doc, reason: removed.__setitem__(doc.id, doc.meta.get("duplicate_of")))
    start = time.perf_counter()
    list(step.run(docs))
    return removed, time.perf_counter() - start


def corpus_figures(directory: Path, config: NearDedupConfig) -> str:
    """Precision and recall on a corpus of JSONL shards (real near-duplicates, unlabelled): precision by
    exact Jaccard with the named survivor; recall against exact greedy clustering over every pair that
    a permissive LSH (56 bands of 2 rows: a pair at 0.7 is missed with probability 1e-16) proposes."""
    docs = [Document(str(r["id"]), r["text"]) for f in sorted(directory.glob("*.jsonl"))
            for r in map(json.loads, open(f, encoding="utf-8"))]
    removed, seconds = run_step(docs, config)
    return evaluate_corpus(docs, removed, config) + f" ({seconds:.1f} s)"


def evaluate_corpus(docs: list[Document], removed: dict[str, str], config: NearDedupConfig) -> str:
    hasher = NearDedup(config).hasher
    shingles = hasher.shingle_arrays([d.text for d in docs])
    number = {d.id: i for i, d in enumerate(docs)}
    t = config.threshold
    right = sum(jaccard_sorted(shingles[number[a]], shingles[number[b]]) >= t - GREY for a, b in removed.items())
    # the reference: candidate pairs from a permissive LSH, each checked exactly
    wide = NearDedup(NearDedupConfig(bands=56, rows=2, seed=config.seed, ngram_size=config.ngram_size)).hasher
    keys = band_keys(wide.sign([d.text for d in docs]), 56, 2)
    neighbours: dict[int, set[int]] = defaultdict(set)
    for band in range(56):
        members, firsts = band_edges(keys[:, band])
        for m, f in zip(members.tolist(), firsts.tolist()):
            neighbours[m].add(f)
            neighbours[f].add(m)
    # runs of equal keys are stars (member - first): members of one run are neighbours through the first
    kept: set[int] = set()
    should = set()
    for i in sorted(range(len(docs)), key=lambda i: (-len(docs[i].text), docs[i].id)):
        near = {j for f in neighbours.get(i, ()) for j in (f, *neighbours.get(f, ()))} & kept
        if any(jaccard_sorted(shingles[i], shingles[j]) >= t for j in near):
            should.add(docs[i].id)
        else:
            kept.add(i)
    found = sum(d in removed for d in should)
    return (f"{len(docs)} documents, removed {len(removed)} (exact greedy {len(should)}): "
            f"precision {right / max(len(removed), 1):.4f} recall {found / max(len(should), 1):.4f}")


def parse_sets(pairs: list[str]) -> dict[str, float]:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key.removeprefix("near_dedup.")] = float(value) if "." in value else int(value)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="near_dedup.KEY=V")
    parser.add_argument("--corpus", type=Path, action="append", default=[],
                        help="also measure on this directory of JSONL shards (e.g. bench/dataprep.py's subsets)")
    args = parser.parse_args(argv)
    config = NearDedupConfig(**parse_sets(args.set))
    for corpus in args.corpus:
        print(f"{corpus}: {corpus_figures(corpus, config)}")
    if not base_texts():
        print(f"skipped: no real text under {SHARED}")
        return 0
    totals = defaultdict(float)
    for seed in range(args.seeds):
        docs, family_of, borrowed = make_set(seed)
        removed, seconds = run_step(docs, config)
        figures = evaluate(docs, family_of, borrowed, config, removed)
        print(f"seed {seed}: {figures['documents']} documents, removed {figures['removed']} "
              f"(exact greedy {figures['should']}): precision {figures['precision']:.4f} recall "
              f"{figures['recall']:.4f} ({seconds:.2f} s)")
        for key in ("removed", "should"):
            totals[key] += figures[key]
        totals["right"] += figures["precision"] * figures["removed"]
        totals["found"] += figures["recall"] * figures["should"]
    if args.seeds:
        print(f"all seeds: precision {totals['right'] / max(totals['removed'], 1):.4f} "
              f"recall {totals['found'] / max(totals['should'], 1):.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
