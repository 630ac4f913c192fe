"""Main text, title and declared language of an HTML page (trafilatura does the text)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import trafilatura
from lxml import etree
from lxml.html import HtmlElement
from trafilatura.core import trafilatura_sequence
from trafilatura.metadata import extract_title
from trafilatura.settings import DEFAULT_CONFIG, Extractor
from trafilatura.utils import load_html
from trafilatura.xml import xmltotxt

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
ZWNJ = "\u200c"  # zero-width non-joiner: part of Persian spelling, which trafilatura drops as unprintable
ZWNJ_STAND_IN = "\u2e3b"  # a printable character trafilatura keeps, put in ZWNJ's place meanwhile


HAS_ZWNJ = etree.XPath(f'boolean(//text()[contains(., "{ZWNJ}")])')
HAS_STAND_IN = etree.XPath(f'boolean(//text()[contains(., "{ZWNJ_STAND_IN}")])')
# how else a ZWNJ gets into the parsed text: a character reference (any case, leading zeros)
ZWNJ_REFERENCE = re.compile(r"&(?:zwnj|#0*8204|#x0*200c)", re.IGNORECASE)


@dataclass
class Extracted:
    text: str  # the main text, one paragraph a line ("" when none was found)
    title: str | None  # the <title>, else trafilatura's guess
    lang: str | None  # the page's lang attribute as written, e.g. "fa-IR"


def extract_page(html: str | bytes, url: str | None = None) -> Extracted | None:
    """The main text of a page; None when the input is not an HTML document."""
    tree = load_html(html)
    return extract_tree(tree, url, html if isinstance(html, str) else None) if tree is not None else None


def extract_tree(tree: HtmlElement, url: str | None = None, source: str | None = None) -> Extracted:
    """extract_page on a tree that trafilatura's load_html gave, which it uses up (trafilatura prunes
    it); `source`: the HTML it was parsed from, when at hand (a quicker look for ZWNJ)."""
    title, lang = page_title(tree), page_lang(tree)
    protected = protect_zwnj(tree) if source is None or may_have_zwnj(source) else False
    text = main_text(tree, url)
    if protected:
        text = text.replace(ZWNJ_STAND_IN, ZWNJ)
    return Extracted(text=tidy_lines(text), title=title, lang=lang)


# the trafilatura whose bare_extraction main_text follows step by step (tests/crawler/test_extract.py
# compares the two); any other version takes bare_extraction itself
DIRECT_TRAFILATURA = "2.3.1"


def main_text(tree: HtmlElement, url: str | None) -> str:
    """trafilatura.bare_extraction(tree, url, include_comments=False, include_tables=True, fast=True)
    .text, "" for none: comments under an article are not its text; fast: without the fallback
    extractors (readability, jusText), 1.4x the pages/s at the same F1 on the article-extraction
    benchmark (0.963 against 0.960, bench/extraction.py).

    bare_extraction first copies a tree it is given (~1 ms of a page's ~12), to leave the caller's
    as it was; the crawl has no use for the tree afterwards, so for the trafilatura checked against
    it this runs bare_extraction's steps for these options on the tree itself."""
    if trafilatura.__version__ != DIRECT_TRAFILATURA:
        document = trafilatura.bare_extraction(tree, url=url, include_comments=False, include_tables=True, fast=True)
        return document.text if document is not None and document.text else ""
    options = Extractor(config=DEFAULT_CONFIG, output_format="python", fast=True, precision=False, recall=False,
                        comments=False, formatting=None, links=False, images=False, tables=True, dedup=False,
                        lang=None, url=url, with_metadata=False, only_with_metadata=False, author_blacklist=None,
                        url_blacklist=None, date_params=None)
    try:
        postbody, temp_text, _, temp_comments = trafilatura_sequence(tree, options, options.url)
        if options.max_tree_size:
            if len(postbody) > options.max_tree_size:
                etree.strip_tags(postbody, "hi")
            if len(postbody) > options.max_tree_size:
                return ""
        if len(temp_text) < options.min_output_size and len(temp_comments) < options.min_output_comm_size:
            return ""
    except (TypeError, ValueError):
        return ""
    return xmltotxt(postbody, options.formatting) or ""


def tidy_lines(text: str) -> str:
    """Drop the source's indentation and blank lines that trafilatura passes through."""
    return "\n".join(line for line in (raw.strip() for raw in text.splitlines()) if line)


def may_have_zwnj(source: str) -> bool:
    """Whether the tree parsed from `source` can have ZWNJ in its text: a search of the string in C
    (a tenth of a millisecond on a 170 kB page), where the XPath below walks every text node."""
    return ZWNJ in source or ZWNJ_REFERENCE.search(source) is not None


def protect_zwnj(tree: HtmlElement) -> bool:
    """Swap ZWNJ for its stand-in in the tree's text; False (tree untouched) when there is none,
    or when the page itself uses the stand-in and swapping back would be ambiguous."""
    # XPath looks through the text in C: most pages have no ZWNJ and are left at that
    if not HAS_ZWNJ(tree) or HAS_STAND_IN(tree):
        return False
    for element in tree.iter():
        if element.text and ZWNJ in element.text:
            element.text = element.text.replace(ZWNJ, ZWNJ_STAND_IN)
        if element.tail and ZWNJ in element.tail:
            element.tail = element.tail.replace(ZWNJ, ZWNJ_STAND_IN)
    return True


def page_title(tree: HtmlElement) -> str | None:
    element = tree.find(".//title")
    title = " ".join(element.text_content().split()) if element is not None else ""
    return title or extract_title(tree)


def page_lang(tree: HtmlElement) -> str | None:
    """<html lang>, else the first element that declares one (DocBook puts it on a div)."""
    for element in tree.iter():
        if not isinstance(element.tag, str):  # comments, processing instructions
            continue
        lang = element.get("lang") or element.get(XML_LANG) or element.get("xml:lang")
        if lang and lang.strip():
            return lang.strip()
    return None
