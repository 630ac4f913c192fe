"""One view of a document's text that every rule shares: lines, paragraphs and words, split once.

`view(doc)` is cached on the document (keyed by its text, so a step that rewrites the text gets a
fresh view). Words are split per language: whitespace tokens with edge punctuation stripped for
languages written with spaces (en, fa, pl and the fallback), one word per ideograph/kana for
Chinese and Japanese, Thai/Lao/Khmer/Burmese runs as they stand. Tokens with no letter or digit
('-', '#', '…') are not words (datatrove's "non-symbol words").
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Callable

from tokenmill.documents import Document

# A word: from the first to the last letter/digit of a whitespace token ('(hello),' → 'hello').
SPACED_WORD = re.compile(r"[^\W_](?:\S*[^\W_])?")
# Chinese/Japanese: each Han/kana character is a word; other runs as above.
CJK_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[^\W_\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
PARAGRAPH_BREAK = re.compile(r"\n{2,}")


def split_spaced(text: str) -> list[str]:
    return SPACED_WORD.findall(text)


def split_cjk(text: str) -> list[str]:
    return CJK_WORD.findall(text)


# language → word splitter; a language not listed uses "default".
WORD_SPLITTERS: dict[str, Callable[[str], list[str]]] = {
    "default": split_spaced,
    "zh": split_cjk,
    "ja": split_cjk,
}


def base_language(lang: object) -> str | None:
    """'pl-PL' → 'pl'; None for a missing or empty code."""
    if not isinstance(lang, str) or not lang:
        return None
    return lang.split("-")[0].split("_")[0].lower()


def split_words(text: str, lang: str | None = None) -> list[str]:
    return WORD_SPLITTERS.get(lang or "default", split_spaced)(text)


class TextView:
    """Lazily computed, cached parts of one text (in one language)."""

    def __init__(self, text: str, lang: str | None):
        self.text = text
        self.lang = lang

    @cached_property
    def lines(self) -> list[str]:
        """Lines as split on '\\n' (empty ones included)."""
        return self.text.split("\n")

    @cached_property
    def nonempty_lines(self) -> list[str]:
        """Lines stripped of surrounding whitespace, blank ones left out."""
        return [s for s in (line.strip() for line in self.lines) if s]

    @cached_property
    def paragraphs(self) -> list[str]:
        return PARAGRAPH_BREAK.split(self.text.strip())

    @cached_property
    def tokens(self) -> list[str]:
        """Whitespace tokens, punctuation included."""
        return self.text.split()

    @cached_property
    def words(self) -> list[str]:
        return split_words(self.text, self.lang)

    @cached_property
    def spaced_words(self) -> list[str]:
        """Words of whitespace tokens (edge punctuation stripped) whatever the language: one per token."""
        splitter = WORD_SPLITTERS.get(self.lang or "default", split_spaced)
        return self.words if splitter is split_spaced else split_spaced(self.text)

    @cached_property
    def lower_words(self) -> list[str]:
        return [w.lower() for w in self.words]


def view(doc: Document) -> TextView:
    """The shared view of `doc.text`, in the language identified for it (or declared, or none)."""
    cached = doc.cache.get("view")
    lang = base_language(doc.meta.get("lang"))
    if cached is None or cached.text is not doc.text or cached.lang != lang:
        cached = doc.cache["view"] = TextView(doc.text, lang)
    return cached
