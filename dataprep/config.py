"""The `prepare:` section of params.yaml: which steps run, in what order, with which thresholds.

Defaults follow the Gopher paper (Rae et al. 2021, appendix A) and datatrove's implementations,
checked against real web text and the offline demo (the Debian Administrator's Handbook in
en-US, fa-IR and pl-PL), where most real prose pages survive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DEFAULT_STEPS = ["normalize", "language", "quality", "repetition", "exact_dedup", "near_dedup", "pii"]


@dataclass
class NormalizeConfig:
    form: Literal["NFC", "NFKC", "none"] = "NFC"  # Unicode normal form ("none" keeps code points as they are)
    persian_letters: bool = True  # in Persian text, Arabic yeh/kaf (ي ى ك) become Persian ی ک
    drop_invisible: bool = True  # drop control/format chars (soft hyphen, BOM, bidi marks) but keep ZWNJ and ZWJ
    whitespace: bool = True  # CRLF → LF, odd spaces → ' ', collapse runs, trim lines, at most one blank line
    fold_digits: bool = False  # Persian ۰-۹ and Arabic-Indic ٠-٩ digits → 0-9


@dataclass
class LanguageConfig:
    allowed: list[str] = field(default_factory=lambda: ["en", "fa", "pl"])  # ISO 639-1 codes to keep
    min_score: float = 0.5  # py3langid probability below which a document is 'und' (removed)
    max_chars: int = 20_000  # identify on the first N characters (speed; pages are decided by their start)

    def __post_init__(self) -> None:
        if not self.allowed:
            raise ValueError("language.allowed must name at least one language")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"language.min_score must be within [0, 1], got {self.min_score}")
        if self.max_chars < 1:
            raise ValueError(f"language.max_chars must be positive, got {self.max_chars}")


@dataclass
class QualityConfig:
    min_words: int = 50  # fewer words (tokens with a letter or digit) → 'quality:min_words'
    max_words: int = 100_000  # more words → 'quality:max_words'
    min_mean_word_length: float = 3.0  # mean characters per word below this → nav lists, tables of numbers
    max_mean_word_length: float = 10.0  # above this → URLs, hashes, base64
    max_symbol_word_ratio: float = 0.1  # ('#' + '...' + '…') per word
    max_bullet_lines: float = 0.9  # fraction of lines starting with a bullet (• - * ...)
    max_ellipsis_lines: float = 0.3  # fraction of lines ending in '...' or '…' (truncated teasers)
    min_alpha_words: float = 0.8  # fraction of words that contain a letter
    min_stop_words: int = 2  # stop words of the document's language (en/fa/pl lists; rule skipped for others)

    def __post_init__(self) -> None:
        if self.min_words > self.max_words:
            raise ValueError(f"quality.min_words ({self.min_words}) exceeds max_words ({self.max_words})")
        if self.min_mean_word_length > self.max_mean_word_length:
            raise ValueError("quality.min_mean_word_length exceeds max_mean_word_length")
        for name in ("max_bullet_lines", "max_ellipsis_lines", "min_alpha_words"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"quality.{name} must be within [0, 1], got {getattr(self, name)}")


@dataclass
class RepetitionConfig:
    max_dup_line_frac: float = 0.30  # fraction of lines that repeat an earlier line
    max_dup_para_frac: float = 0.30  # fraction of paragraphs that repeat an earlier paragraph
    max_dup_line_char_frac: float = 0.20  # fraction of characters in repeated lines
    max_dup_para_char_frac: float = 0.20  # fraction of characters in repeated paragraphs
    max_top_ngram_char_frac: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])  # n = 2, 3, 4
    max_dup_ngram_char_frac: list[float] = field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]
    )  # n = 5, 6, 7, 8, 9, 10

    def __post_init__(self) -> None:
        if len(self.max_top_ngram_char_frac) != 3:
            raise ValueError("repetition.max_top_ngram_char_frac needs 3 values (n = 2, 3, 4)")
        if len(self.max_dup_ngram_char_frac) != 6:
            raise ValueError("repetition.max_dup_ngram_char_frac needs 6 values (n = 5..10)")


@dataclass
class ExactDedupConfig:
    normalize_text: bool = True  # compare case-folded text with whitespace collapsed, not raw bytes


@dataclass
class NearDedupConfig:
    ngram_size: int = 5  # shingles are word n-grams of this size (lower-cased)
    bands: int = 14  # LSH bands; with rows=8 the similarity threshold is about (1/14)^(1/8) ≈ 0.72
    rows: int = 8  # MinHash values per band (num_perm = bands × rows = 112)
    seed: int = 1  # seed of the MinHash permutations
    min_jaccard: float = 0.7  # candidate pairs must also have estimated Jaccard ≥ this (0 trusts LSH alone)

    def __post_init__(self) -> None:
        if self.ngram_size < 1 or self.bands < 2 or self.rows < 1:
            raise ValueError("near_dedup needs ngram_size ≥ 1, bands ≥ 2 and rows ≥ 1")
        if not 0.0 <= self.min_jaccard <= 1.0:
            raise ValueError(f"near_dedup.min_jaccard must be within [0, 1], got {self.min_jaccard}")

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows


@dataclass
class PIIConfig:
    email: bool = True  # scrub e-mail addresses (also 'name [at] host [dot] org')
    phone: bool = True  # scrub phone numbers (international and national forms with separators)
    ip: bool = True  # scrub IPv4 and IPv6 addresses
    email_placeholder: str = "<EMAIL>"
    phone_placeholder: str = "<PHONE>"
    ip_placeholder: str = "<IP_ADDRESS>"


@dataclass
class PrepareConfig:
    steps: list[str] = field(default_factory=lambda: list(DEFAULT_STEPS))  # run in this order
    shard_size: int = 10_000  # documents per output Parquet shard
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    language: LanguageConfig = field(default_factory=LanguageConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    repetition: RepetitionConfig = field(default_factory=RepetitionConfig)
    exact_dedup: ExactDedupConfig = field(default_factory=ExactDedupConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    pii: PIIConfig = field(default_factory=PIIConfig)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise ValueError(f"shard_size must be positive, got {self.shard_size}")
        unknown = [s for s in self.steps if s not in DEFAULT_STEPS]
        if unknown:
            raise ValueError(f"steps: unknown step '{unknown[0]}' (known: {', '.join(DEFAULT_STEPS)})")

