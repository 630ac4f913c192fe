import gzip
import json
import re
from collections import Counter
import pytest
import trafilatura
from trafilatura.utils import load_html

from crawler.extract import DIRECT_TRAFILATURA, extract_page, main_text

from .conftest import page


def words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text))


def test_persian_keeps_zwnj_title_and_lang():
    html = ('<html><head><title>راهنمای سیستم‌ها</title></head><body><div lang="fa-IR"><article>'
            + "<p>مدیر سیستم باید پیش از هر تغییری از داده‌ها نسخهٔ پشتیبان تهیه کند. شماره ۱۲۳</p>" * 3
            + "</article></div></body></html>")
    page = extract_page(html)
    assert "داده\u200cها" in page.text and "\u2e3b" not in page.text and "۱۲۳" in page.text
    assert page.title == "راهنمای سیستم‌ها" and page.lang == "fa-IR"


def test_zwnj_written_as_a_character_reference_is_kept():
    for reference in ("&zwnj;", "&#8204;", "&#x200C;", "&#x0200c;"):
        html = ('<html lang="fa"><body><article>'
                + f"<p>مدیر سیستم باید پیش از هر تغییری از داده{reference}ها نسخهٔ پشتیبان تهیه کند.</p>" * 3
                + "</article></body></html>")
        for source in (html, html.encode("utf-8")):
            assert "داده\u200cها" in extract_page(source).text, reference


def test_html_lang_wins_and_text_has_no_markup_or_indentation():
    html = ('<html lang="pl"><body><div lang="en"><p>\n\t\t  Pierwszy akapit tekstu.\n\t</p>'
            '<p>Drugi akapit tekstu, nieco dłuższy od pierwszego.</p></div></body></html>')
    page = extract_page(html)
    assert page.lang == "pl"
    assert page.text.splitlines() == ["Pierwszy akapit tekstu.", "Drugi akapit tekstu, nieco dłuższy od pierwszego."]


def test_not_html_gives_none():
    assert extract_page(b"") is None


def test_real_articles_are_extracted(shared_data):
    benchmark = shared_data / "article-extraction-benchmark"
    truth = json.loads((benchmark / "ground-truth.json").read_text(encoding="utf-8"))
    recalls = []
    for key in sorted(truth)[:20]:
        html = gzip.decompress((benchmark / "html" / f"{key}.html.gz").read_bytes())
        page = extract_page(html, url=truth[key]["url"])
        expected, got = words(truth[key]["articleBody"]), words(page.text)
        recalls.append(sum((expected & got).values()) / max(1, sum(expected.values())))
        assert page.title
    assert sum(recalls) / len(recalls) > 0.85


PAGES = {
    "article": page("An article", ["a.html", "b.html"], paragraphs=6),
    "short": "<html><body><p>Too short.</p></body></html>",
    "empty": "<html><head><title>Nothing</title></head><body><div><img src='x.png'></div></body></html>",
    "table": ("<html><body><article><h1>Figures</h1><p>" + "Words before the table, long enough. " * 8 + "</p><table>"
              + "".join(f"<tr><td>row {i}</td><td>{i * i}</td></tr>" for i in range(12)) + "</table></article>"
              + "<div class='comments'><p>" + "A reader's comment. " * 10 + "</p></div></body></html>"),
    "navigation": ("<html><body><nav>" + "".join(f"<a href='/{i}'>Link {i}</a> " for i in range(40)) + "</nav><div><p>"
                   + "Some text that is not an article. " * 4 + "</p></div></body></html>"),
}


@pytest.mark.skipif(trafilatura.__version__ != DIRECT_TRAFILATURA, reason="main_text calls bare_extraction itself")
@pytest.mark.parametrize("name", sorted(PAGES))
def test_main_text_is_bare_extractions_text(name):
    document = trafilatura.bare_extraction(load_html(PAGES[name]), url="http://site.localhost/p.html",
                                           include_comments=False, include_tables=True, fast=True)
    expected = document.text if document is not None and document.text else ""
    assert main_text(load_html(PAGES[name]), "http://site.localhost/p.html") == expected


def test_main_text_is_bare_extractions_text_on_real_articles(shared_data):
    benchmark = shared_data / "article-extraction-benchmark"
    for path in sorted((benchmark / "html").glob("*.html.gz"))[:40]:
        html = gzip.decompress(path.read_bytes()).decode("utf-8", "replace")
        document = trafilatura.bare_extraction(load_html(html), include_comments=False, include_tables=True, fast=True)
        assert main_text(load_html(html), None) == (document.text if document is not None and document.text else "")
