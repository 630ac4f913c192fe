"""Stop words for the Gopher 'has enough stop words' rule, per language (lower-case).

English is Gopher's own list (Rae et al. 2021: the, be, to, of, and, that, have, with) plus common
function words; Persian and Polish are the most frequent function words of each language.
"""

from __future__ import annotations

STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        "the be to of and that have with a an in is are was were it for on as by this not or from at".split()
    ),
    "fa": frozenset(
        "و در به از که این را با است برای آن یک تا می هم بر شود نیز کند ها هر اما یا شده باید بود"
        " خود کرد دارد ای".split()
    ),
    "pl": frozenset(
        "i w na z się nie do to że jest o jak po a od za co ale czy dla są przez tak jako lub oraz"
        " także tylko być może ze".split()
    ),
}


def stop_words_for(lang: object) -> frozenset[str] | None:
    """The list for a language code like 'pl' or 'pl-PL'; None when there is none."""
    if not isinstance(lang, str) or not lang:
        return None
    return STOP_WORDS.get(lang.split("-")[0].split("_")[0].lower())
