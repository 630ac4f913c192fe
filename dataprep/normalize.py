"""Text normalisation: Unicode form, Persian letters, invisible characters, whitespace, digits."""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from typing import Any, Iterable, Iterator

from dataprep.config import NormalizeConfig
from dataprep.step import RemoveCallback, Step
from tokenmill.documents import Document

ZWNJ, ZWJ = "\u200c", "\u200d"
# Arabic yeh (ي), alef maksura (ى) and kaf (ك) typed on Arabic keyboards → Persian ی and ک.
PERSIAN_LETTERS = str.maketrans({"\u064a": "\u06cc", "\u0649": "\u06cc", "\u0643": "\u06a9"})
# Letters Persian has and Arabic lacks (پ چ ژ گ, Persian yeh/kaf): their presence marks Persian text.
PERSIAN_ONLY = re.compile("[\u067e\u0686\u0698\u06af\u06cc\u06a9]")
ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")
DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x0b\x0c\x85]")
ODD_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
INNER_SPACE_RUN = re.compile(r"(?<=\S)[ \t]{2,}")  # runs inside a line; leading indentation is kept
TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
BLANK_LINES = re.compile(r"\n{3,}")


def is_persian(text: str, declared_lang: Any = None) -> bool:
    """Persian if the page says so or it uses Persian-only letters (Arabic text has none of them)."""
    if isinstance(declared_lang, str) and declared_lang.lower().startswith("fa"):
        return True
    return ARABIC_SCRIPT.search(text) is not None and PERSIAN_ONLY.search(text) is not None


@functools.cache
def invisible_chars() -> re.Pattern:
    """Control (Cc) and format (Cf) characters except newline, tab, ZWNJ and ZWJ (Persian needs them)."""
    chars = (
        chr(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in ("\n", "\t", ZWNJ, ZWJ)
    )
    return re.compile("[" + "".join(re.escape(ch) for ch in chars) + "]")


def normalize_whitespace(text: str) -> str:
    text = ODD_SPACES.sub(" ", text)
    text = INNER_SPACE_RUN.sub(" ", text)
    text = TRAILING_SPACE.sub("", text)
    return BLANK_LINES.sub("\n\n", text).strip("\n ")


def normalize_text(text: str, config: NormalizeConfig, declared_lang: Any = None) -> str:
    """The normalised form of `text`; `declared_lang` is the page's lang attribute, if any."""
    text = LINE_BREAKS.sub("\n", text)  # before dropping controls: \x0b, \x0c, \x85 are breaks
    if config.form != "none":
        text = unicodedata.normalize(config.form, text)
    if config.drop_invisible:
        text = invisible_chars().sub("", text)
    if config.persian_letters and is_persian(text, declared_lang):
        text = text.translate(PERSIAN_LETTERS)
    if config.fold_digits:
        text = text.translate(DIGITS)
    if config.whitespace:
        text = normalize_whitespace(text)
    return text


class Normalize(Step):
    """Rewrites each document's text; a document left empty is removed as 'normalize:empty'."""

    name = "normalize"

    def __init__(self, config: NormalizeConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.changed = 0

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self.documents_in += 1
            text = normalize_text(doc.text, self.config, doc.meta.get("lang"))
            if not text.strip():
                self.remove(doc, "normalize:empty")
                continue
            if text != doc.text:
                self.changed += 1
                doc = Document(doc.id, text, doc.meta)
            self.documents_out += 1
            yield doc

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "changed": self.changed}
