"""FineWeb's three custom filters (Penedo et al. 2024, section 3.3), plus datatrove's list-ratio rule.

- line_punct: remove a page when at most `min_line_punct_ratio` of its lines end in terminal
  punctuation (FineWeb: 0.12);
- short_lines: remove when more than `max_short_line_ratio` of the lines have at most
  `short_line_chars` characters (FineWeb: 0.67 of lines ≤ 30 characters);
- dup_line_chars: remove when the characters of lines that repeat an earlier line, over all
  characters except newlines, exceed `max_dup_line_char_ratio`. Default 0.1, the FineWeb paper's
  threshold; datatrove's FineWebQualityFilter defaults to 0.01, which removes a page for one repeated
  'Share' or 'Reply' line: choose 0.01 to match datatrove exactly;
- newline ratio (datatrove's `new_line_ratio`, not in the paper): newlines per word above
  `max_newline_ratio` marks a list page (0 turns it off).
"""

from __future__ import annotations

from dataclasses import dataclass

from dataprep.registry import register_step
from dataprep.step import Filter, RemoveCallback, stored_signals
from dataprep.steps.c4 import TERMINAL_PUNCTUATION
from dataprep.steps.gopher_repetition import find_duplicates
from dataprep.text import view
from tokenmill.documents import Document


@dataclass
class FineWebConfig:
    min_line_punct_ratio: float = 0.12  # remove when the fraction of lines ending in punctuation is ≤ this
    max_short_line_ratio: float = 0.67  # remove when the fraction of short lines is ≥ this
    short_line_chars: int = 30  # a line this long or shorter is short
    max_dup_line_char_ratio: float = 0.1  # paper: 0.1 (datatrove's default: 0.01)
    max_newline_ratio: float = 0.3  # newlines per word (datatrove's list rule; 0: off)


@register_step("fineweb", config=FineWebConfig, group="filter", order=46, default=False, help="FineWeb line rules")
class FineWebFilter(Filter):
    """Removes pages FineWeb's line rules would remove."""

    def __init__(self, config: FineWebConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config

    def reject(self, doc: Document) -> str | None:
        stored = stored_signals(doc, SIGNALS) if self.replay else None  # tokenmill select
        measured = stored or signals(doc, self.config)
        if self.keep_signals:
            doc.meta.update(measured)
        return decide(measured, self.config)


SIGNALS = ("fineweb_lines", "fineweb_line_punct", "fineweb_short_lines", "fineweb_dup_line_chars", "fineweb_newlines")


def signals(doc: Document, c: FineWebConfig) -> dict[str, float | int]:
    """Non-blank lines, the fractions ending in punctuation / short (at most `short_line_chars`), the
    duplicated-line character fraction and newlines per word."""
    v = view(doc)
    lines = [line.strip() for line in v.lines if line.strip()]
    n = len(lines) or 1
    _, dup_chars = find_duplicates(lines)
    return {
        "fineweb_lines": len(lines),
        "fineweb_line_punct": sum(line.endswith(TERMINAL_PUNCTUATION) for line in lines) / n,
        "fineweb_short_lines": sum(len(line) <= c.short_line_chars for line in lines) / n,
        "fineweb_dup_line_chars": dup_chars / max(len(v.text) - v.text.count("\n"), 1),
        "fineweb_newlines": v.text.count("\n") / max(len(v.words), 1),
    }


def decide(s: dict, c: FineWebConfig) -> str | None:
    """FineWeb's decision from measurements `s` (stored ones from `prepare.keep_signals`, or fresh)."""
    if not s["fineweb_lines"]:
        return "fineweb:empty"
    if s["fineweb_line_punct"] <= c.min_line_punct_ratio:
        return "fineweb:line_punct"
    if s["fineweb_short_lines"] >= c.max_short_line_ratio:
        return "fineweb:short_lines"
    if s["fineweb_dup_line_chars"] > c.max_dup_line_char_ratio:
        return "fineweb:dup_line_chars"
    if c.max_newline_ratio and s["fineweb_newlines"] > c.max_newline_ratio:
        return "fineweb:newline_ratio"
    return None
