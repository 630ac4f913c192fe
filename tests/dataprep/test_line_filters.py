"""C4 and FineWeb rules on real-sounding pages in English, Persian and Polish."""

import pytest
from dataprep_samples import ENGLISH, PERSIAN, POLISH

from dataprep.steps.c4 import C4Config, C4Filter
from dataprep.steps.fineweb import FineWebConfig, FineWebFilter
from tokenmill.documents import Document


def run_step(step, text, lang="en"):
    removed = []
    step.on_remove = lambda doc, reason: removed.append(reason)
    kept = list(step.run([Document("d", text, {"lang": lang})]))
    return (kept[0].text if kept else None), (removed[0] if removed else None)


@pytest.mark.parametrize("text, lang", [(ENGLISH, "en"), (PERSIAN, "fa"), (POLISH, "pl")])
def test_c4_keeps_real_prose_unchanged(text, lang):
    assert run_step(C4Filter(C4Config()), text, lang) == (text, None)


def test_c4_drops_boilerplate_lines_and_keeps_the_page():
    page = ENGLISH + "\nMenu\nThis site uses cookies to improve your experience.\nPlease enable JavaScript to view comments.\nRead more about it here[1]."
    step = C4Filter(C4Config())
    text, reason = run_step(step, page)
    assert reason is None and text == ENGLISH + "\nRead more about it here."
    assert step.stats()["lines_dropped"] == {"javascript": 1, "policy": 1, "terminal_punctuation": 1}


def test_c4_rules_are_switchable():
    page = ENGLISH + "\nMenu"
    assert run_step(C4Filter(C4Config(terminal_punctuation=False, min_words_per_line=0)), page)[0] == page


@pytest.mark.parametrize(
    "page, reason",
    [
        (ENGLISH + "\nLorem ipsum dolor sit amet, consectetur.", "c4:lorem_ipsum"),
        (ENGLISH + "\nint main() { return 0; }", "c4:curly_braces"),
        ("One sentence here. Two sentences here.", "c4:min_sentences"),
        ("Home\nAbout\nContact", "c4:empty"),
    ],
)
def test_c4_page_rules(page, reason):
    assert run_step(C4Filter(C4Config()), page) == (None, reason)


@pytest.mark.parametrize("text, lang", [(ENGLISH, "en"), (PERSIAN, "fa"), (POLISH, "pl")])
def test_fineweb_keeps_real_prose(text, lang):
    assert run_step(FineWebFilter(FineWebConfig()), text, lang) == (text, None)


def test_fineweb_rules():
    menu = "\n".join(f"Category {i} of the archive with all the older posts" for i in range(20)) + "\n" + ENGLISH
    assert run_step(FineWebFilter(FineWebConfig()), menu)[1] == "fineweb:line_punct"
    short = "\n".join(f"Item number {i} is here." for i in range(20)) + "\n" + ENGLISH
    assert run_step(FineWebFilter(FineWebConfig()), short)[1] == "fineweb:short_lines"
    dup = ENGLISH + "\n" + "\n".join(["Share this article with your friends and family today."] * 6)
    assert run_step(FineWebFilter(FineWebConfig()), dup)[1] == "fineweb:dup_line_chars"
    # datatrove's 0.01: one repeated short line is enough
    once = ENGLISH + "\nShare this.\nShare this."
    assert run_step(FineWebFilter(FineWebConfig()), once)[1] is None
    assert run_step(FineWebFilter(FineWebConfig(max_dup_line_char_ratio=0.01)), once)[1] == "fineweb:dup_line_chars"
