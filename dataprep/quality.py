"""A quality classifier trained on a user's own labels: fastText's supervised mode (DCLM, FineWeb-Edu).

    tokenmill quality train --positive CURATED... --negative WEB... --out models/quality [--lang en,fa,pl]

Labels come from document sets (`--positive` / `--negative`: files or directories of shards), a JSONL
of `{text, label}` (`--labelled`: label 1/0, true/false, or 'positive'/'negative'), or another step's
decisions (`--decisions CORPUS`: a prepare output's kept documents are positives, the documents its quality
rules removed negatives - not duplicates, other languages or evaluation-set copies: the rules distilled into
a model that scores every document instead of cutting it off).

The model is a logistic regression over hashed word unigrams (and bigrams with `ngrams=2`; liblinear
fits it): the same family as fastText's supervised mode that DCLM and FineWeb-Edu used (a linear model
over a bag of word n-grams), without fastText's own binary: the
wheels on the index for numpy 2 trained non-deterministically here (and one returned NaN), and the
numpy-1 wheel returns wrong probabilities under numpy 2.

The features come from the words of the shared `TextView` (dataprep/text.py), which the Gopher rules
already compute for a whole batch in numpy: an n-gram's bucket is its word ids (64-bit hashes of the
words as written, case kept) mixed and taken modulo `n_features`, a document's vector the n-grams' counts
over its first `max_words` words, L2-normalised (`hashed_features`). No Python runs per word, and
training and scoring share the code, so a trained model scores as it was measured. Only the weights of
n-grams seen in training are stored (`.npz`, read with allow_pickle=False), so the model is small and a
DVC output. With `--lang` one model per language is trained (documents of other languages are left out);
without it, one multilingual model. A model directory written before this featurization (no "version": 2
in model.json) is refused with one line naming it: train it again.

Every example is held out or not by a hash of its id (`holdout` of them, 0.2 by default), so the
split does not move when examples are added. On the held-out part: precision and recall at 0.5,
ROC-AUC and the histogram of scores, written to the output's stats.json and handed to `log` (the
pipeline layer logs them to MLflow: dataprep does not import training).

Output directory:

    model.json         {"format": ..., "version": 2, "languages": {"en": "en.npz", ...} or {"*": "all.npz"},
                        "n_features": ..., "ngrams": ..., "max_words": ...}
    <lang>.npz         the models: indices and weights of the n-grams seen, and the intercept
    stats.json         examples per language and label, held-out figures, score histograms
"""

from __future__ import annotations

import functools
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from dataprep.minhash import mix64
from dataprep.text import TextView, base_language, prepare_views
from tokenmill.documents import Document, read_documents
from tokenmill.errors import UserError
from tokenmill.stage import StageStats, atomic_directory, check_replaceable, write_json

ALL_LANGUAGES = "*"
MODEL_MANIFEST = "model.json"
MODEL_FORMAT = "hashed-word-id-logistic-regression"
MODEL_VERSION = 2  # 1: scikit-learn's HashingVectorizer over the first max_chars characters
HISTOGRAM_BINS = 20


@dataclass
class QualityTrainConfig:
    """Hashed n-gram logistic regression settings."""

    n_features: int = 1 << 20  # hash buckets of unigrams and bigrams (only those seen are stored)
    # words alone, C = 1: held-out ROC-AUC 0.805 on bench/quality.py's real pages (0.805 at C = 0.5, 0.797 at
    # C = 2), against 0.773 with bigrams (0.737 at C = 4; DCLM's fastText uses bigrams, on far more data)
    ngrams: int = 1  # 2: words and word bigrams
    c: float = 1.0  # inverse L2 regularisation strength (liblinear's C)
    holdout: float = 0.2  # share of examples (by id hash) held out for the figures
    max_words: int = 2_000  # a document is judged on its first N words (speed; a page shows itself early)

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be within (0, 1), got {self.holdout}")
        if not 2 <= self.n_features <= 1 << 32 or self.ngrams < 1 or self.c <= 0 or self.max_words < 1:
            raise ValueError("n_features must be within [2, 2^32], ngrams and max_words at least 1, c positive")


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    label: bool  # True: positive (keep-worthy)
    lang: str | None


def held_out(example_id: str, share: float) -> bool:
    return zlib.crc32(example_id.encode("utf-8")) % 10_000 < share * 10_000


# --- where labels come from -----------------------------------------------------------------------
def documents_as_examples(paths: Iterable[str | Path], label: bool) -> Iterator[Example]:
    for path in paths:
        for doc in read_documents(path):
            yield Example(f"{path}:{doc.id}", doc.text, label, base_language(doc.meta.get("lang")))


# Removals that say something about a page's quality. Not these: duplicates (good text, already seen),
# another language, or a copy of the evaluation set.
QUALITY_REASONS = ("quality:", "repetition:", "c4:", "fineweb:", "url_filter:", "quality_model:")


def decisions_as_examples(corpus: str | Path) -> Iterator[Example]:
    """A prepare output's kept documents as positives and the ones its quality rules removed as negatives."""
    removed = Path(corpus) / "removed"
    if not removed.is_dir():
        raise UserError(f"{corpus}: no removed/ directory (--decisions takes a prepare output)")
    yield from documents_as_examples([corpus], True)
    for doc in read_documents(removed):
        if str(doc.meta.get("reason", "")).startswith(QUALITY_REASONS):
            yield Example(f"{removed}:{doc.id}", doc.text, False, base_language(doc.meta.get("lang")))


LABEL_WORDS = {"1": True, "true": True, "positive": True, "hq": True, "0": False, "false": False,
               "negative": False, "lq": False}


def labelled_examples(path: str | Path) -> Iterator[Example]:
    """`{text, label[, id, lang]}` lines; a bad line is a one-line error naming it."""
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise UserError(f"{where}: a record needs a string 'text'")
            label = LABEL_WORDS.get(str(record.get("label")).lower())
            if label is None:
                raise UserError(f"{where}: label must be 1/0, true/false or positive/negative, got {record.get('label')!r}")
            yield Example(str(record.get("id", where)), record["text"], label, base_language(record.get("lang")))


# --- training -------------------------------------------------------------------------------------
_NGRAM_STEP = np.uint64(0x9E3779B97F4A7C15)  # mixes an n-gram's ids in order ('a b' and 'b a' differ)
_PREPARE_BATCH = 256  # documents per prepare_views call when texts come without views


def hashed_features(views: list[TextView], n_features: int, ngrams: int, max_words: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(buckets, at): the bucket of every word n-gram (1 to `ngrams` words) among the first `max_words`
    words of each view, as an int64 array of all views' n-grams end to end, and where each view's part
    starts (then the end). A unigram's bucket is its word id modulo `n_features` (the ids are mixed
    hashes); an n-gram's is the splitmix64 finaliser of its ids combined in order, modulo `n_features`.
    A view's buckets do not depend on the other views."""
    sizes = np.fromiter((min(len(v.word_ids), max_words) for v in views), dtype=np.int64, count=len(views))
    ids = (np.concatenate([v.word_ids[:max_words] for v in views]).astype(np.uint64, copy=False) if len(views)
           else np.zeros(0, dtype=np.uint64))
    ends = np.cumsum(sizes)
    modulus = np.uint64(n_features)
    parts, per_view = [ids % modulus], [sizes]
    with np.errstate(over="ignore"):
        gram = ids
        for n in range(2, ngrams + 1):
            gram = mix64(gram[:-1] * _NGRAM_STEP + ids[n - 1 :])  # [j]: words j .. j + n - 1
            # an n-gram starting at j is inside its view when its last word is: j + n <= that view's end
            owner = np.repeat(np.arange(len(views)), sizes)[: len(gram)]
            inside = np.arange(len(gram)) + n <= ends[owner]
            parts.append(gram[inside] % modulus)
            per_view.append(np.maximum(sizes - (n - 1), 0))
    # reorder so that each view's n-grams of every order lie together
    counts = np.stack(per_view, axis=1)  # view × order
    at = np.zeros(len(views) + 1, dtype=np.int64)
    np.cumsum(counts.sum(axis=1), out=at[1:])
    if ngrams == 1:
        return parts[0].astype(np.int64), at
    owners = [np.repeat(np.arange(len(views)), c) for c in per_view]
    order = np.argsort(np.concatenate(owners), kind="stable")
    return np.concatenate(parts).astype(np.int64)[order], at


def bucket_counts(buckets: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(views, buckets, counts): each distinct (view, bucket) pair of `hashed_features` and how often it
    occurs, sorted by view and bucket."""
    owner = np.repeat(np.arange(len(at) - 1, dtype=np.uint64), np.diff(at))
    keys = np.sort((owner << np.uint64(32)) | buckets.astype(np.uint64))
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    counts = np.diff(np.append(first, len(keys)))
    distinct = keys[first]
    return ((distinct >> np.uint64(32)).astype(np.int64), (distinct & np.uint64(0xFFFFFFFF)).astype(np.int64),
            counts)


def feature_norms(buckets: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The L2 norm of each view's count vector (0 for a view without words)."""
    owners, _, counts = bucket_counts(buckets, at)
    return np.sqrt(np.bincount(owners, weights=counts.astype(np.float64) ** 2, minlength=len(at) - 1))


def feature_matrix(views: list[TextView], n_features: int, ngrams: int, max_words: int):
    """The views' L2-normalised n-gram count vectors as a scipy CSR matrix (views × n_features)."""
    from scipy.sparse import csr_matrix

    owners, columns, counts = bucket_counts(*hashed_features(views, n_features, ngrams, max_words))
    norms = np.sqrt(np.bincount(owners, weights=counts.astype(np.float64) ** 2, minlength=len(views)))
    values = (counts / norms[owners]).astype(np.float32) if len(counts) else np.zeros(0, np.float32)
    return csr_matrix((values, (owners, columns)), shape=(len(views), n_features), dtype=np.float32)


def text_views(texts: list[str], langs: list[str | None]) -> list[TextView]:
    """Views of texts that come without documents (training, held-out figures), in batches."""
    views: list[TextView] = []
    for start in range(0, len(texts), _PREPARE_BATCH):
        docs = [Document(str(i), t, {"lang": lang} if lang else {})
                for i, (t, lang) in enumerate(zip(texts[start : start + _PREPARE_BATCH], langs[start : start + _PREPARE_BATCH]))]
        views += prepare_views(docs)
    return views


def example_views(examples: list[Example]) -> list[TextView]:
    return text_views([e.text for e in examples], [e.lang for e in examples])


def identified_language(example: Example) -> str:
    if example.lang:
        return example.lang
    from dataprep.steps.language import language_model

    return language_model().identify(example.text[:2000])[0]


def train(examples: Iterable[Example], out: str | Path, config: QualityTrainConfig,
          languages: list[str] | None = None, log: Callable[[dict, Path], None] | None = None) -> dict[str, Any]:
    """Train one model per language of `languages` (None: one multilingual model) into `out`."""
    check_replaceable(out, "quality")
    groups = group_examples(examples, languages)
    stats = StageStats(stage="quality")
    with atomic_directory(out) as tmp:
        manifest = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "n_features": config.n_features,
                    "ngrams": config.ngrams, "max_words": config.max_words, "languages": {}}
        for lang, group in groups.items():
            name = "all" if lang == ALL_LANGUAGES else lang
            stats.extra.setdefault("languages", {})[lang] = train_one(group, tmp / f"{name}.npz", config)
            manifest["languages"][lang] = f"{name}.npz"
            stats.documents_in += len(group)
        write_json(tmp / MODEL_MANIFEST, manifest)
        stats.extra["config"] = config.__dict__
        stats.write(tmp)
        if log is not None:
            log(stats.to_dict(), tmp)
    return stats.to_dict()


def group_examples(examples: Iterable[Example], languages: list[str] | None) -> dict[str, list[Example]]:
    groups: dict[str, list[Example]] = {lang: [] for lang in languages or [ALL_LANGUAGES]}
    for example in examples:
        lang = identified_language(example) if languages else ALL_LANGUAGES
        if lang in groups:
            groups[lang].append(example)
    for lang, group in groups.items():
        labels = {e.label for e in group}
        if labels != {True, False}:
            missing = "positive" if True not in labels else "negative"
            where = "" if lang == ALL_LANGUAGES else f" in language '{lang}'"
            raise UserError(f"no {missing} examples{where}: a classifier needs both")
    return groups


def train_one(examples: list[Example], path: Path, config: QualityTrainConfig) -> dict[str, Any]:
    """Train on the examples not held out, save to `path`, and measure on the held-out ones."""
    train_part = [e for e in examples if not held_out(e.id, config.holdout)]
    test_part = [e for e in examples if held_out(e.id, config.holdout)]
    if not {e.label for e in train_part} == {True, False}:
        train_part, test_part = examples, []  # too few to hold any out: say so in the figures
    scorer = fit(train_part, config)
    scorer.save(path)
    figures = heldout_figures(scorer, test_part)
    return {"train": label_counts(train_part), "heldout": label_counts(test_part), **figures,
            "model_bytes": path.stat().st_size}


def fit(examples: list[Example], config: QualityTrainConfig) -> "QualityScorer":
    from sklearn.linear_model import LogisticRegression

    features = feature_matrix(example_views(examples), config.n_features, config.ngrams, config.max_words)
    labels = np.array([e.label for e in examples])
    # the dual problem: far fewer documents than hash buckets (the primal took 40x as long here)
    model = LogisticRegression(C=config.c, solver="liblinear", dual=True, max_iter=1000, random_state=0).fit(features, labels)
    weights = model.coef_[0].astype(np.float32)
    return QualityScorer(weights, float(model.intercept_[0]), config.ngrams, config.max_words)


def label_counts(examples: list[Example]) -> dict[str, int]:
    positives = sum(e.label for e in examples)
    return {"positive": positives, "negative": len(examples) - positives}


def heldout_figures(scorer: "QualityScorer", examples: list[Example]) -> dict[str, Any]:
    if not examples:
        return {"precision": None, "recall": None, "roc_auc": None, "histogram": None}
    return figures(scorer.score_views(example_views(examples)), np.array([e.label for e in examples]))


def figures(scores: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Precision and recall at 0.5, ROC-AUC and the score histograms of `scores` against `labels` (bool)."""
    predicted = scores >= 0.5
    true_positives = int((predicted & labels).sum())
    return {
        "precision": true_positives / max(int(predicted.sum()), 1),
        "recall": true_positives / max(int(labels.sum()), 1),
        "roc_auc": roc_auc(scores, labels),
        "histogram": score_histogram(scores, labels),
    }


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """The probability that a random positive scores above a random negative (ties count half)."""
    positives, negatives = scores[labels], scores[~labels]
    if not len(positives) or not len(negatives):
        return None
    order = np.sort(negatives)
    below = np.searchsorted(order, positives, side="left")
    ties = np.searchsorted(order, positives, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(positives) * len(negatives)))


def score_histogram(scores: np.ndarray, labels: np.ndarray) -> dict[str, list]:
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    return {"edges": [round(float(e), 3) for e in edges],
            "positive": np.histogram(scores[labels], edges)[0].tolist(),
            "negative": np.histogram(scores[~labels], edges)[0].tolist()}


# --- scoring --------------------------------------------------------------------------------------
class QualityScorer:
    """P(positive) of texts: the sigmoid of hashed n-gram features times the weights, plus the intercept."""

    def __init__(self, weights: np.ndarray, intercept: float, ngrams: int, max_words: int):
        self.weights, self.intercept, self.ngrams, self.max_words = weights, intercept, ngrams, max_words

    def score(self, texts: list[str], lang: str | None = None) -> np.ndarray:
        """Scores of texts in language `lang` (its word splitting; None: words between spaces)."""
        return self.score_views(text_views(list(texts), [lang] * len(texts)))

    def score_views(self, views: list[TextView]) -> np.ndarray:
        """Scores of the texts of `views` (`prepare_views`: their word ids come from one numpy pass)."""
        if not views:
            return np.zeros(0)
        buckets, at = hashed_features(views, len(self.weights), self.ngrams, self.max_words)
        sums = np.zeros(len(buckets) + 1, dtype=np.float64)
        np.cumsum(self.weights[buckets], out=sums[1:])
        norms = feature_norms(buckets, at)
        logits = (sums[at[1:]] - sums[at[:-1]]) / np.where(norms > 0, norms, 1.0) + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, path: Path) -> None:
        """Only the n-grams with a weight: a few hundred kB instead of 4 MB for 2^20 buckets."""
        indices = np.flatnonzero(self.weights).astype(np.int32)
        with open(path, "wb") as file:  # np.savez would add '.npz' to a name without it
            np.savez_compressed(file, indices=indices, weights=self.weights[indices], intercept=np.float64(self.intercept))

    @classmethod
    def load(cls, path: Path, n_features: int, ngrams: int, max_words: int) -> "QualityScorer":
        try:
            with np.load(path, allow_pickle=False) as saved:
                weights = np.zeros(n_features, dtype=np.float32)
                weights[saved["indices"]] = saved["weights"]
                return cls(weights, float(saved["intercept"]), ngrams, max_words)
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise UserError(f"{path}: not a quality model ({exc})") from None


class QualityModel:
    """A trained model directory: the scorer for a document's language (or the multilingual one)."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        manifest_path = directory / MODEL_MANIFEST
        if not manifest_path.is_file():
            raise UserError(f"{directory}: not a quality model (no {MODEL_MANIFEST}; make one with `tokenmill quality train`)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{manifest_path}: not a quality model manifest ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("version") != MODEL_VERSION:
            version = manifest.get("version", 1) if isinstance(manifest, dict) else "?"
            raise UserError(f"{manifest_path}: a quality model of format version {version}, this tokenmill reads "
                            f"version {MODEL_VERSION} (train it again with `tokenmill quality train`)")
        shape = manifest["n_features"], manifest["ngrams"], manifest["max_words"]
        self.scorers = {lang: QualityScorer.load(directory / name, *shape) for lang, name in manifest["languages"].items()}

    @property
    def languages(self) -> list[str]:
        return list(self.scorers)

    def scorer(self, lang: str | None) -> QualityScorer | None:
        return self.scorers.get(lang or "") or self.scorers.get(ALL_LANGUAGES)


@functools.lru_cache(maxsize=4)
def load_model(directory: str) -> QualityModel:
    """One loaded model per process and directory (steps travel to Dask workers without it)."""
    return QualityModel(directory)
