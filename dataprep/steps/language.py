"""Language identification with py3langid (model shipped in the package, works offline).

Writes `lang` (ISO 639-1 code, or 'und') and `lang_score` (probability). A language the page
declared (its `lang` attribute, e.g. 'pl-PL', arriving as meta `lang`) is kept as `declared_lang`,
but the decision is made on the text: the Debian handbook's pl-PL tree is mostly English.

The languages expected of a document are its source's (`source_languages`, a list the crawler
writes from the source YAML); documents without it (JSONL input) fall back to
`prepare.language.allowed`. A document in another language is removed as 'language:<code>';
its `lang` and `lang_score` stay on it (in removed/).
"""

from __future__ import annotations

import functools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback
from dataprep.text import base_language
from tokenmill.documents import Document
from tokenmill.errors import ConfigError, UserError

UNDETERMINED = "und"
SOURCE_LANGUAGES = "source_languages"  # document field: the languages its source is expected to be in


@dataclass
class LanguageConfig:
    allowed: list[str] = field(default_factory=lambda: ["en", "fa", "pl"])  # ISO 639-1 codes kept when a
    # document does not name its source's languages (`source_languages`)
    min_score: float = 0.5  # py3langid probability below which a document is 'und' (removed)
    max_chars: int = 20_000  # identify on the first N characters (speed; pages are decided by their start)

    def __post_init__(self) -> None:
        if not self.allowed:
            raise ValueError("language.allowed must name at least one language")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"language.min_score must be within [0, 1], got {self.min_score}")
        if self.max_chars < 1:
            raise ValueError(f"language.max_chars must be positive, got {self.max_chars}")


@functools.cache
def language_model() -> LanguageIdentifierModel:
    """One model per process (steps travel to Dask workers without it)."""
    return LanguageIdentifierModel()


def expected_languages(doc: Document, fallback: list[str]) -> set[str]:
    """The document's `source_languages` (base codes), or `fallback` when it has none."""
    value: Any = doc.meta.get(SOURCE_LANGUAGES)
    if value is None:
        return set(fallback)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise UserError(f"document {doc.id}: field '{SOURCE_LANGUAGES}' must be a list of language codes")
    return {base_language(v) for v in value if v} or set(fallback)


class LanguageIdentifierModel:
    """py3langid's naive Bayes model with probabilities normalised to [0, 1]."""

    def __init__(self) -> None:
        self.model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)

    @property
    def languages(self) -> list[str]:
        return self.model.labels

    def identify(self, text: str) -> tuple[str, float]:
        """(language, probability); ('und', 0.0) for text without letters."""
        if not any(ch.isalpha() for ch in text):
            return UNDETERMINED, 0.0
        lang, score = self.model.classify(text)
        return lang, round(float(score), 4)


@register_step("language", config=LanguageConfig, group="filter", order=20, help="language identification (py3langid)")
class LanguageFilter(Filter):
    """Keeps documents in an expected language (their source's, else `allowed`) with enough confidence."""

    def __init__(self, config: LanguageConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        unknown = sorted(set(config.allowed) - set(language_model().languages))
        if unknown:
            raise ConfigError(f"prepare.language.allowed: unknown language code '{unknown[0]}'")
        self.identified: Counter = Counter()  # language → documents (all, before filtering)

    def reject(self, doc: Document) -> str | None:
        lang, score = language_model().identify(doc.text[: self.config.max_chars])
        if score < self.config.min_score:
            lang = UNDETERMINED
        declared = doc.meta.get("lang")
        if declared is not None and "declared_lang" not in doc.meta:
            doc.meta["declared_lang"] = declared
        doc.meta["lang"] = lang
        doc.meta["lang_score"] = score
        self.identified[lang] += 1
        if lang not in expected_languages(doc, self.config.allowed):
            return f"language:{lang}"
        return None

    def summary(self) -> dict[str, Any]:
        return {"languages": dict(sorted(self.identified.items()))}
