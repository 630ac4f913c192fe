"""Text normalisation: mojibake repair, Unicode form, Persian letters, invisible characters, whitespace, digits.

Mojibake (UTF-8 read as Latin-1/cp1252: 'cafÃ©', 'Ø³Ù„Ø§Ù…') is repaired with ftfy's encoding fixes
only: quotes, ligatures, character widths and HTML entities are left as the author wrote them.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from typing import Any, Iterable, Iterator

from dataclasses import dataclass
from typing import Literal

from dataprep.registry import register_step
from dataprep.step import STORED, RemoveCallback, Step
from tokenmill.documents import Document


@dataclass
class NormalizeConfig:
    fix_mojibake: bool = True  # repair text decoded with the wrong codec (ftfy's encoding fixes only)
    form: Literal["NFC", "NFKC", "none"] = "NFC"  # Unicode normal form ("none" keeps code points as they are)
    persian_letters: bool = True  # in Persian text, Arabic yeh/kaf (ي ى ك) become Persian ی ک
    drop_invisible: bool = True  # drop control/format chars (soft hyphen, BOM, bidi marks) but keep ZWNJ and ZWJ
    whitespace: bool = True  # CRLF → LF, odd spaces → ' ', collapse runs, trim lines, at most one blank line
    fold_digits: bool = False  # Persian ۰-۹ and Arabic-Indic ٠-٩ digits → 0-9


ZWNJ, ZWJ = "\u200c", "\u200d"
# Arabic yeh (ي), alef maksura (ى) and kaf (ك) typed on Arabic keyboards → Persian ی and ک.
PERSIAN_LETTERS = str.maketrans({"\u064a": "\u06cc", "\u0649": "\u06cc", "\u0643": "\u06a9"})
# Letters Persian has and Arabic lacks (پ چ ژ گ, Persian yeh/kaf): their presence marks Persian text.
PERSIAN_ONLY = re.compile("[\u067e\u0686\u0698\u06af\u06cc\u06a9]")
ARABIC_SCRIPT = re.compile("[\u0600-\u06ff]")
DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x0b\x0c\x85]")
ODD_SPACES = re.compile("[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]")
INNER_SPACE_RUN = re.compile(r"[ \t](?<=\S[ \t])[ \t]+")  # runs inside a line; leading indentation is kept
TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
BLANK_LINES = re.compile(r"\n{3,}")
# UTF-8 read as Latin-1/cp1252 leaves a lead byte (Â-ô) followed by what was a continuation byte
# (0x80-0xBF: C1 controls, NBSP, ¡-¿ or their cp1252 glyphs € ‚ „ … ‘ ’ “ ” • – — ™ ...). Only texts
# with such a pair go through ftfy (its own test is slower than the repair on clean text).
MAYBE_MOJIBAKE = re.compile(
    "[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201a\u201c-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
)


@functools.cache
def ftfy_config():
    import ftfy

    return ftfy.TextFixerConfig(
        unescape_html=False, remove_terminal_escapes=True, fix_encoding=True, restore_byte_a0=True,
        replace_lossy_sequences=True, decode_inconsistent_utf8=True, fix_c1_controls=True,
        fix_latin_ligatures=False, fix_character_width=False, uncurl_quotes=False, fix_line_breaks=False,
        fix_surrogates=True, remove_control_chars=False, normalization=None, explain=False,
    )


def fix_mojibake(text: str) -> str:
    """`text` with mis-decoded UTF-8 repaired; text without Latin-1/cp1252 characters is left alone."""
    if MAYBE_MOJIBAKE.search(text) is None:
        return text
    import ftfy

    return ftfy.fix_text(text, ftfy_config())


def is_persian(text: str, declared_lang: Any = None) -> bool:
    """Persian if the page says so or it uses Persian-only letters (Arabic text has none of them)."""
    if isinstance(declared_lang, str) and declared_lang.lower().startswith("fa"):
        return True
    return ARABIC_SCRIPT.search(text) is not None and PERSIAN_ONLY.search(text) is not None


@functools.cache
def invisible_chars() -> re.Pattern:
    """Control (Cc) and format (Cf) characters except newline, tab, ZWNJ and ZWJ (Persian needs them)."""
    # Every Cc/Cf code point lies below U+20000 or in the tag block U+E0000-U+E0FFF. The class is
    # written as ranges: `re` matches a class of ranges several times faster than one of single chars.
    codes = [
        c
        for c in itertools.chain(range(0x20000), range(0xE0000, 0xE1000))
        if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in ("\n", "\t", ZWNJ, ZWJ)
    ]
    ranges: list[list[int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return re.compile(
        "[" + "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges) + "]"
    )


def normalize_whitespace(text: str) -> str:
    text = ODD_SPACES.sub(" ", text)
    text = INNER_SPACE_RUN.sub(" ", text)
    text = TRAILING_SPACE.sub("", text)
    return BLANK_LINES.sub("\n\n", text).strip("\n ")


def normalize_text(text: str, config: NormalizeConfig, declared_lang: Any = None) -> str:
    """The normalised form of `text`; `declared_lang` is the page's lang attribute, if any."""
    if config.fix_mojibake:
        text = fix_mojibake(text)
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


@register_step("normalize", config=NormalizeConfig, group="normalize", order=10, help="mojibake, Unicode, Persian letters, whitespace")
class Normalize(Step):
    """Rewrites each document's text; a document left empty is removed as 'normalize:empty'."""

    def __init__(self, config: NormalizeConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.changed = 0

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self.documents_in += 1
            if self.replay and any(key.startswith(STORED) for key in doc.meta):
                # tokenmill select: a document with a later filter's signals passed this step, and its
                # stored text is this step's output (normalising is idempotent: tested)
                self.documents_out += 1
                yield doc
                continue
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
