"""Language identification with py3langid (model shipped in the package, works offline).

Writes `lang` (ISO 639-1 code, or 'und') and `lang_score` (probability). A language the page
declared (its `lang` attribute, e.g. 'pl-PL', arriving as meta `lang`) is kept as `declared_lang`,
but the decision is made on the text: the Debian handbook's pl-PL tree is mostly English.
"""

from __future__ import annotations

from collections import Counter
from py3langid.langid import MODEL_FILE, LanguageIdentifier

from dataprep.config import LanguageConfig
from dataprep.step import Filter, RemoveCallback
from tokenmill.documents import Document
from tokenmill.errors import ConfigError

UNDETERMINED = "und"


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


class LanguageFilter(Filter):
    """Keeps documents whose identified language is allowed with enough confidence."""

    name = "language"

    def __init__(self, config: LanguageConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.model = LanguageIdentifierModel()
        unknown = sorted(set(config.allowed) - set(self.model.languages))
        if unknown:
            raise ConfigError(f"prepare.language.allowed: unknown language code '{unknown[0]}'")
        self.identified: Counter = Counter()  # language → documents (all, before filtering)

    def reject(self, doc: Document) -> str | None:
        lang, score = self.model.identify(doc.text[: self.config.max_chars])
        if score < self.config.min_score:
            lang = UNDETERMINED
        declared = doc.meta.get("lang")
        if declared is not None and "declared_lang" not in doc.meta:
            doc.meta["declared_lang"] = declared
        doc.meta["lang"] = lang
        doc.meta["lang_score"] = score
        self.identified[lang] += 1
        if lang not in self.config.allowed:
            return f"language:{lang}"
        return None
