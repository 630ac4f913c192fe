"""A quality classifier trained on a user's own labels: fastText's supervised mode (DCLM, FineWeb-Edu).

    tokenmill quality train --positive CURATED... --negative WEB... --out models/quality [--lang en,fa,pl]

Labels come from document sets (`--positive` / `--negative`: files or directories of shards), a JSONL
of `{text, label}` (`--labelled`: label 1/0, true/false, or 'positive'/'negative'), or another step's
decisions (`--decisions CORPUS`: a prepare output's kept documents are positives, its `removed/` ones
negatives: the rules distilled into a model that scores every document instead of cutting it off).

The model is a logistic regression over hashed word unigrams and bigrams (scikit-learn's
HashingVectorizer and liblinear): the same family as fastText's supervised mode that DCLM and
FineWeb-Edu used (a linear model over a bag of word n-grams), without fastText's own binary: the
wheels on the index for numpy 2 trained non-deterministically here (and one returned NaN), and the
numpy-1 wheel returns wrong probabilities under numpy 2. Only the weights of n-grams seen in training are
stored (`.npz`, read with allow_pickle=False), so the model is small and a DVC output. With `--lang` one
model per language is trained (documents of other languages are left out); without it, one multilingual
model.

Every example is held out or not by a hash of its id (`holdout` of them, 0.2 by default), so the
split does not move when examples are added. On the held-out part: precision and recall at 0.5,
ROC-AUC and the histogram of scores, written to the output's stats.json and handed to `log` (the
pipeline layer logs them to MLflow: dataprep does not import training).

Output directory:

    model.json         {"languages": {"en": "en.npz", ...} or {"*": "all.npz"}, "n_features": ..., ...}
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

from dataprep.text import base_language
from tokenmill.documents import Document, read_documents
from tokenmill.errors import UserError
from tokenmill.stage import StageStats, atomic_directory, check_replaceable, write_json

ALL_LANGUAGES = "*"
MODEL_MANIFEST = "model.json"
HISTOGRAM_BINS = 20


@dataclass
class QualityTrainConfig:
    """Hashed n-gram logistic regression settings."""

    n_features: int = 1 << 20  # hash buckets of unigrams and bigrams (only those seen are stored)
    ngrams: int = 2  # words and word bigrams (DCLM's fastText classifier uses bigrams too)
    c: float = 4.0  # inverse L2 regularisation strength (liblinear's C)
    holdout: float = 0.2  # share of examples (by id hash) held out for the figures
    max_chars: int = 10_000  # a document is judged on its first N characters (speed; a page shows itself early)

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must be within (0, 1), got {self.holdout}")
        if self.n_features < 2 or self.ngrams < 1 or self.c <= 0:
            raise ValueError("n_features must be at least 2, ngrams at least 1, c positive")


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


def decisions_as_examples(corpus: str | Path) -> Iterator[Example]:
    """A prepare output's kept documents as positives and its removed/ ones as negatives."""
    removed = Path(corpus) / "removed"
    if not removed.is_dir():
        raise UserError(f"{corpus}: no removed/ directory (--decisions takes a prepare output)")
    yield from documents_as_examples([corpus], True)
    yield from documents_as_examples([removed], False)


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
def vectorizer(n_features: int, ngrams: int):
    """Lower-cased words (2+ letters or digits; Persian too) and their n-grams, hashed (murmurhash3)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=n_features, ngram_range=(1, ngrams), alternate_sign=False, norm="l2",
                             dtype=np.float32)


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
        manifest = {"format": "hashed-ngram-logistic-regression", "n_features": config.n_features,
                    "ngrams": config.ngrams, "max_chars": config.max_chars, "languages": {}}
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

    features = vectorizer(config.n_features, config.ngrams).transform([e.text[: config.max_chars] for e in examples])
    labels = np.array([e.label for e in examples])
    # the dual problem: far fewer documents than hash buckets (the primal took 40x as long here)
    model = LogisticRegression(C=config.c, solver="liblinear", dual=True, max_iter=1000, random_state=0).fit(features, labels)
    weights = model.coef_[0].astype(np.float32)
    return QualityScorer(weights, float(model.intercept_[0]), config.ngrams, config.max_chars)


def label_counts(examples: list[Example]) -> dict[str, int]:
    positives = sum(e.label for e in examples)
    return {"positive": positives, "negative": len(examples) - positives}


def heldout_figures(scorer: "QualityScorer", examples: list[Example]) -> dict[str, Any]:
    if not examples:
        return {"precision": None, "recall": None, "roc_auc": None, "histogram": None}
    scores = scorer.score([e.text for e in examples])
    labels = np.array([e.label for e in examples])
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

    def __init__(self, weights: np.ndarray, intercept: float, ngrams: int, max_chars: int):
        self.weights, self.intercept, self.max_chars = weights, intercept, max_chars
        self.features = vectorizer(len(weights), ngrams)

    def score(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        logits = self.features.transform([t[: self.max_chars] for t in texts]) @ self.weights + self.intercept
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    def save(self, path: Path) -> None:
        """Only the n-grams with a weight: a few hundred kB instead of 4 MB for 2^20 buckets."""
        indices = np.flatnonzero(self.weights).astype(np.int32)
        with open(path, "wb") as file:  # np.savez would add '.npz' to a name without it
            np.savez_compressed(file, indices=indices, weights=self.weights[indices], intercept=np.float64(self.intercept))

    @classmethod
    def load(cls, path: Path, n_features: int, ngrams: int, max_chars: int) -> "QualityScorer":
        try:
            with np.load(path, allow_pickle=False) as saved:
                weights = np.zeros(n_features, dtype=np.float32)
                weights[saved["indices"]] = saved["weights"]
                return cls(weights, float(saved["intercept"]), ngrams, max_chars)
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise UserError(f"{path}: not a quality model ({exc})") from None


class QualityModel:
    """A trained model directory: the scorer for a document's language (or the multilingual one)."""

    def __init__(self, directory: str | Path):
        directory = Path(directory)
        manifest_path = directory / MODEL_MANIFEST
        if not manifest_path.is_file():
            raise UserError(f"{directory}: not a quality model (no {MODEL_MANIFEST}; make one with `tokenmill quality train`)")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        shape = manifest["n_features"], manifest["ngrams"], manifest["max_chars"]
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
