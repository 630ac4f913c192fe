"""C4's line and page rules (Raffel et al. 2020, section 2.2), as datatrove's C4QualityFilter, each switchable.

Line rules drop a line and keep the page: no terminal punctuation, fewer than `min_words_per_line`
words, a word longer than `max_word_length`, 'javascript', cookie/terms/privacy-policy boilerplate;
citation markers ('[1]', '[edit]', '[citation needed]') are cut out of lines. Page rules remove the
page: 'lorem ipsum', a curly brace (code), fewer than `min_sentences` sentences left. A page left
with no lines is removed as 'c4:empty'.

Terminal punctuation includes the Persian/Arabic question mark '؟' and the CJK '。！？'; words
and sentences are counted with the shared per-language view (`dataprep.text`).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

from dataprep.registry import register_step
from dataprep.step import RemoveCallback, Step
from dataprep.text import base_language, split_words
from tokenmill.documents import Document

TERMINAL_PUNCTUATION = (".", "!", "?", '"', "'", "”", "’", "»", "…", "؟", "。", "！", "？")
POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
CITATION = re.compile(r"\[(?:\d+|edit|citation needed)\]", re.IGNORECASE)
SENTENCE_END = re.compile(r"[.!?؟。！？…]+(?:[\"'”’»)]*)(?=\s|$)")


@dataclass
class C4Config:
    terminal_punctuation: bool = True  # drop lines that do not end in . ! ? " ' (and ؟ 。 …)
    min_words_per_line: int = 3  # drop lines with fewer words (0: off)
    max_word_length: int = 1000  # drop lines holding a longer word (0: off)
    remove_citations: bool = True  # cut '[1]', '[edit]', '[citation needed]' out of lines
    javascript: bool = True  # drop lines mentioning javascript
    policy: bool = True  # drop cookie / terms-of-use / privacy-policy lines
    lorem_ipsum: bool = True  # remove pages containing 'lorem ipsum'
    curly_braces: bool = True  # remove pages containing '{' or '}' (code)
    min_sentences: int = 5  # remove pages with fewer sentences left (0: off)


def count_sentences(text: str) -> int:
    return len(SENTENCE_END.findall(text))


@register_step("c4", config=C4Config, group="filter", order=45, default=False, help="C4 line and page rules")
class C4Filter(Step):
    """Drops C4's boilerplate lines and removes pages C4 would not keep."""

    def __init__(self, config: C4Config, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.lines_dropped: Counter = Counter()  # rule → lines dropped from kept pages
        self.changed = 0

    def page_reason(self, text: str) -> str | None:
        lower = text.lower()
        if self.config.lorem_ipsum and "lorem ipsum" in lower:
            return "c4:lorem_ipsum"
        if self.config.curly_braces and ("{" in text or "}" in text):
            return "c4:curly_braces"
        return None

    def line_reason(self, line: str, lang: str | None) -> str | None:
        c = self.config
        if c.terminal_punctuation and not line.endswith(TERMINAL_PUNCTUATION):
            return "terminal_punctuation"
        words = split_words(line, lang)
        if c.min_words_per_line and len(words) < c.min_words_per_line:
            return "min_words_per_line"
        if c.max_word_length and any(len(w) > c.max_word_length for w in words):
            return "max_word_length"
        lower = line.lower()
        if c.javascript and "javascript" in lower:
            return "javascript"
        if c.policy and any(phrase in lower for phrase in POLICY_PHRASES):
            return "policy"
        return None

    def filter_lines(self, text: str, lang: str | None, dropped: Counter) -> str:
        kept = []
        for line in text.split("\n"):
            if self.config.remove_citations:
                line = CITATION.sub("", line)
            stripped = line.strip()
            if not stripped:
                if kept and kept[-1] != "":
                    kept.append("")  # keep paragraph breaks between kept lines
                continue
            reason = self.line_reason(stripped, lang)
            if reason is None:
                kept.append(line.rstrip())
            else:
                dropped[reason] += 1
        return "\n".join(kept).strip("\n")

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self.documents_in += 1
            reason = self.page_reason(doc.text)
            if reason is not None:
                self.remove(doc, reason)
                continue
            dropped: Counter = Counter()
            text = self.filter_lines(doc.text, base_language(doc.meta.get("lang")), dropped)
            if not text.strip():
                self.remove(doc, "c4:empty")
                continue
            if self.config.min_sentences and count_sentences(text) < self.config.min_sentences:
                self.remove(doc, "c4:min_sentences")
                continue
            self.lines_dropped.update(dropped)
            if text != doc.text:
                self.changed += 1
                doc = Document(doc.id, text, doc.meta)
            self.documents_out += 1
            yield doc

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "changed": self.changed, "lines_dropped": dict(sorted(self.lines_dropped.items()))}
