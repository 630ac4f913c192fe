"""PII scrubbing: e-mail addresses, phone numbers and IP addresses become typed placeholders.

Candidates are found by regular expressions and then checked by code, so that what looks like a
number but is not a phone (dates, ISO timestamps, versions like 1.2.3, years, prices, thousands
like 1 234 567) stays. Persian (۰-۹) and Arabic-Indic (٠-٩) digits count as digits.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any, Callable, Iterable, Iterator

from dataclasses import dataclass

from dataprep.registry import register_step
from dataprep.step import RemoveCallback, Step
from tokenmill.documents import Document

# --- e-mail ---------------------------------------------------------------------------------------
_LOCAL = r"[\w!#$%&*+=?^~-]+(?:\.[\w!#$%&*+=?^~-]+)*"
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_AT = r"(?:@|\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*)"  # a bare '@' must be tight: 'list @lists.org' is prose
_DOT = r"(?:\.|\s*[\[({<]\s*(?i:dot)\s*[\])}>]\s*)"
EMAIL = re.compile(rf"(?<![\w.+-]){_LOCAL}{_AT}(?:{_LABEL}{_DOT})+[^\W\d_]{{2,}}(?![\w-]|\.\w)")

# --- IP addresses ---------------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.[0-9])")
# Section numbers look like IPv4 addresses: '6.7.3.3. Old packages' (a heading), 'see Section 1.3.2.1'.
SECTION_WORD = re.compile(
    r"(?i:section|sect|sekcja|rozdział|chapter|chap|figure|table|example|rysunek|tabela|przykład|"
    r"قسمت|بخش|فصل|شکل|جدول|مثال|§)\W{0,3}$"
)
IPV6_CANDIDATE = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4})(?![\w:])"
)

# --- phone numbers --------------------------------------------------------------------------------
_D = "[0-9\u06f0-\u06f9\u0660-\u0669]"
_S = "[ \u00a0.-]"  # one separator between digit groups
PHONE_CANDIDATE = re.compile(
    rf"(?<![\w+\-./,@#])"
    rf"(?:\+\s?)?(?:{_D}+{_S}?)?(?:\({_D}+\){_S}?)?{_D}+(?:{_S}{_D}+)*"
    rf"(?![\w@]|[.,\-/:]\w)"
)
_TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")


def is_ipv6(candidate: re.Match) -> bool:
    candidate = candidate.group()
    if candidate.count(":") < 2 or not any(ch.isdigit() for ch in candidate):
        return False  # 'a::b' and 'dead::beef' are code, not addresses
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def is_ipv4(match: re.Match) -> bool:
    """An IPv4 address unless it numbers a section: heading at a line start, or after 'Section'."""
    text, start, end = match.string, match.start(), match.end()
    line_start = text.rfind("\n", 0, start) + 1
    if not text[line_start:start].strip(" \t#*") and text[end : end + 1] in (".", " "):
        return False
    return SECTION_WORD.search(text[max(0, start - 16) : start]) is None


def _year(group: str) -> bool:
    return len(group) == 4 and (1300 <= int(group) <= 1499 or 1800 <= int(group) <= 2199)


def _day_or_month(group: str) -> bool:
    return len(group) <= 2 and 1 <= int(group) <= 31


def _is_date(first: str, middle: str, last: str, dotted: bool) -> bool:
    """yyyy-mm-dd, dd.mm.yyyy (Gregorian or Persian solar years) or, dotted, dd.mm.yy."""
    if _year(first) and _day_or_month(middle) and _day_or_month(last):
        return True
    if _day_or_month(first) and _day_or_month(middle):
        return _year(last) or (dotted and len(last) == 2 and int(middle) <= 12)
    return False


def _contains_date(text: str) -> bool:
    """Whether three consecutive digit groups form a date ('0 2021-08-09' is a size and a date)."""
    for match in re.finditer(r"(?=(?<![0-9])([0-9]+)([.\-/])([0-9]+)\2([0-9]+)(?![0-9]))", text):
        first, sep, middle, last = match.groups()
        if _is_date(first, middle, last, dotted=sep == "."):
            return True
    return False


def is_phone(candidate: re.Match) -> bool:
    """Whether a digit run found by PHONE_CANDIDATE is a phone number and not some other number."""
    text = candidate.group().translate(_TO_ASCII)
    groups = re.findall(r"[0-9]+", text)
    digits = sum(map(len, groups))
    international = text.startswith(("+", "00"))
    separators = set(re.sub(r"[0-9()+]", "", text).replace("\u00a0", " "))
    if len(separators - {" "}) > 1:  # '555-123.4567': mixed separators are not a phone
        return False
    if _contains_date(text):
        return False
    if international:
        return 8 <= digits <= 15 and (len(groups) > 1 or text.startswith("+"))
    if not 7 <= digits <= 12 or len(groups) < 2:
        return False  # a national number needs separators; bare digit runs are ordinary numbers
    if "(" in text:
        return all(len(g) <= 4 for g in groups[1:])
    first, rest = groups[0], groups[1:]
    if len(first) > 5 or any(len(g) < 2 or len(g) > 4 for g in rest):
        return False  # versions (1.2.3), ISBNs, long ids
    if all(_year(g) for g in groups):
        return False
    if all(len(g) == 3 for g in rest) and ("." in separators or len(first) < 3 or "000" in rest):
        return False  # thousands: 1 234 567, 12.345.678, 100 000 000 (but 601 234 567 is a Polish mobile)
    if all(len(g) == 2 for g in groups) and digits != 10:
        return False  # scores and tables: 18 22 13 17 (but 01 23 45 67 89 is a French number)
    if len(groups) == 2 and len(first) == len(rest[0]):
        return False  # ranges: 1000-2000, 100-200
    if separators == {"."} and len(groups) < 3:
        return False  # decimals
    return True


@dataclass
class PIIConfig:
    email: bool = True  # scrub e-mail addresses (also 'name [at] host [dot] org')
    phone: bool = True  # scrub phone numbers (international and national forms with separators)
    ip: bool = True  # scrub IPv4 and IPv6 addresses
    email_placeholder: str = "<EMAIL>"
    phone_placeholder: str = "<PHONE>"
    ip_placeholder: str = "<IP_ADDRESS>"


@register_step("pii", config=PIIConfig, group="scrub", order=90, help="PII into typed placeholders")
class PIIScrubber(Step):
    """Replaces e-mails, IPs and phone numbers with placeholders; counts replacements by kind."""

    def __init__(self, config: PIIConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.replaced: Counter = Counter()  # kind → replacements
        self.documents_changed = 0

    def scrub(self, text: str) -> str:
        """`text` with PII replaced (e-mails first: they hold dots and digits the others would see)."""
        c = self.config
        if c.email:
            text = self._replace(EMAIL, text, "email", c.email_placeholder)
        if c.ip:  # IPv6 first: '::ffff:192.0.2.1' holds an IPv4 address
            text = self._replace(IPV6_CANDIDATE, text, "ip", c.ip_placeholder, is_ipv6)
            text = self._replace(IPV4, text, "ip", c.ip_placeholder, is_ipv4)
        if c.phone:
            text = self._replace(PHONE_CANDIDATE, text, "phone", c.phone_placeholder, is_phone)
        return text

    def _replace(
        self, pattern: re.Pattern, text: str, kind: str, placeholder: str, check: Callable[[re.Match], bool] | None = None
    ) -> str:
        def substitute(match: re.Match) -> str:
            if check is not None and not check(match):
                return match.group()
            self.replaced[kind] += 1
            return placeholder

        return pattern.sub(substitute, text)

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self.documents_in += 1
            text = self.scrub(doc.text)
            if text != doc.text:
                self.documents_changed += 1
                doc = Document(doc.id, text, doc.meta)
            self.documents_out += 1
            yield doc

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "changed": self.documents_changed}

    def summary(self) -> dict[str, Any]:
        return {"pii_replaced": dict(sorted(self.replaced.items()))}
