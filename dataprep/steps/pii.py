"""PII scrubbing: e-mails, phones, IP addresses, payment cards and IBANs become typed placeholders.

Regular expressions find candidates (e-mails, IBANs, IPv6, IPv4, then digit runs, each pass over
the text once, the first two only in texts holding '@' / '[at]' or '::'-like groups where needed);
code then validates each one, so that only real PII goes:

- e-mail: ASCII/Latin local part and domain (an address inside unspaced Chinese, Japanese or Korean
  prose is cut at the script boundary, not swallowed with the clause); image names like
  'logo@2x.png' are not addresses; 'name [at] host [dot] org' is.
- card: 13-19 digits, unseparated or in the usual groups (4-4-4-4, 4-6-5, ...), Luhn-checked, with a
  prefix and length some network issues (Visa, Mastercard, Amex, Discover, UnionPay, JCB, Diners,
  Maestro, Mir, and 16-digit Iranian Shetab cards).
- IBAN: a country code, check digits and 11-30 characters, with or without spaces, of the
  country's registered length (every country of the IBAN registry), mod-97-checked.
- phone: the digit run is parsed by `phonenumbers`: '+' / '00' numbers as international, others in
  the regions of the document's language (`regions`; `region` on the document comes first), e.g.
  Iranian 0912 345 6789 and 021-88776655, Polish 601 234 567; Persian (۰-۹) and Arabic-Indic
  (٠-٩) digits count. Numbers shaped like thousands (120 345 678) or written without any separator
  need a phone word nearby ('tel', 'zadzwoń', 'تماس' ...) unless they are mobiles / start with 0.
- IP: IPv4 (also at the start of a line: logs, hosts files) and IPv6; public (globally routable)
  addresses only unless `public_ips_only: false`. Never netmasks, network addresses (x.x.x.0),
  section numbers, or versions ('version 1.2.3.4', '1.2.3.4.5', 'pkg-1.2.3.4', and single-digit
  dotted quads with no address word nearby).

Never scrubbed: versions, dates (Gregorian and Persian), ISBNs, prices, ranges, numeric tables,
port lists, hashes, decorators.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from dataprep.registry import register_step
from dataprep.step import RemoveCallback, Step
from dataprep.text import base_language
from tokenmill.documents import Document

KINDS = ("email", "phone", "ip", "card", "iban")

# language → phone regions tried in turn for numbers written without '+' (first valid wins)
DEFAULT_REGIONS = {
    "en": ["US", "GB", "CA", "AU", "IE", "NZ", "IN", "ZA"],
    "fa": ["IR", "AF"],
    "pl": ["PL"],
    "de": ["DE", "AT", "CH"],
    "fr": ["FR", "BE", "CH", "CA"],
    "es": ["ES", "MX", "AR", "CO"],
    "it": ["IT"],
    "nl": ["NL", "BE"],
    "pt": ["PT", "BR"],
    "ru": ["RU"],
    "uk": ["UA"],
    "cs": ["CZ"],
    "tr": ["TR"],
    "ar": ["SA", "EG", "AE", "IQ"],
}


@dataclass
class PIIConfig:
    email: bool = True  # scrub e-mail addresses (also 'name [at] host [dot] org')
    phone: bool = True  # scrub phone numbers validated by phonenumbers
    ip: bool = True  # scrub IPv4 and IPv6 addresses
    card: bool = True  # scrub Luhn-valid payment card numbers
    iban: bool = True  # scrub mod-97-valid IBANs
    public_ips_only: bool = True  # only globally routable addresses (as datatrove); false: private ones too
    regions: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_REGIONS.items()})
    fallback_regions: list[str] = field(default_factory=lambda: ["US", "GB"])  # for other languages
    email_placeholder: str = "<EMAIL>"
    phone_placeholder: str = "<PHONE>"
    ip_placeholder: str = "<IP_ADDRESS>"
    card_placeholder: str = "<CARD>"
    iban_placeholder: str = "<IBAN>"


# --- candidate patterns ---------------------------------------------------------------------------
# Letters of scripts written with spaces (Latin, Greek, Cyrillic, Hebrew, Arabic/Persian): CJK, kana,
# Hangul and Thai are left out, so an address ends where unspaced prose around it begins.
_TLD_CHARS = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u0370-\u03ff\u0400-\u04ff\u05d0-\u05ea\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff"
_SPACED = "0-9\u0660-\u0669\u06f0-\u06f9" + _TLD_CHARS
_LABEL = rf"[{_SPACED}](?:[{_SPACED}-]*[{_SPACED}])?"
_AT = r"(?:@|\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*)"  # a bare '@' must be tight: 'list @lists.org' is prose
_DOT = r"(?:\.|\s*[\[({<]\s*(?i:dot)\s*[\])}>]\s*)"
# Every pattern starts with a character class and checks the character before it with a two-wide
# lookbehind (it cannot start with the lookbehind): that lets `re` skip ahead to candidate characters
# instead of trying the pattern at every position, which makes scrubbing several times faster.
_L1 = rf"[{_SPACED}!#$%&'*+=?^_`{{|}}~-]"
EMAIL = (
    rf"{_L1}(?<![{_SPACED}._%+-]{_L1}){_L1}*(?:\.{_L1}+)*{_AT}(?:{_LABEL}{_DOT})+[{_TLD_CHARS}]{{2,24}}"
    rf"(?![{_SPACED}-]|\.[{_SPACED}])"
)
AT_WORD = re.compile(r"[\[({<]\s*(?i:at)\s*[\])}>]")  # texts with '[at]' go through EMAIL itself
# Texts with only a plain '@': find '@domain' and walk back over the local part (EMAIL would try to
# start an address at every word of the text).
AT_DOMAIN = re.compile(rf"@(?:{_LABEL}\.)+[{_TLD_CHARS}]{{2,24}}(?![{_SPACED}-]|\.[{_SPACED}])")
LOCAL_PART_END = re.compile(rf"(?:{_L1}+\.)*{_L1}+\Z")
LOCAL_BOUNDARY = re.compile(rf"[{_SPACED}._%+-]")
IBAN = r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?: ?[A-Z0-9]){11,32}(?![a-z0-9])"
_H = "[0-9A-Fa-f]"
_IPV6_END = rf"(?:[0-9]{{1,3}}(?:\.[0-9]{{1,3}}){{3}}|{_H}{{0,4}})(?![\w:])"
IPV6 = (  # (h{0,4}:){2,7} then an IPv4 address or h{0,4}, starting with a hex digit or with '::'
    rf"{_H}(?<![\w:.]{_H}){_H}{{0,3}}:(?:{_H}{{0,4}}:){{1,6}}{_IPV6_END}"
    rf"|:(?<![\w:.]:)(?:{_H}{{0,4}}:){{1,6}}{_IPV6_END}"
)
IBAN_HEAD = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2} ?$")
IPV6_GATE = re.compile(r":[0-9A-Fa-f]{0,4}:")
IPV4 = r"[0-9](?<![\w.\-][0-9])(?<!\w/[0-9])[0-9]{0,2}(?:\.[0-9]{1,3}){3}(?![\w\-]|\.\w)"
_D = "[0-9\u06f0-\u06f9\u0660-\u0669]"
_S = "[ \u00a0.-]"  # one separator between digit groups
_B = r"[\w+\-./,@#=$€£¥]"  # a number does not start right after these (words, URLs, decimals, prices)
# ... nor right after a colon that follows a digit, a slash or a colon ('10:30', 'http://', '::1');
# 'Phone:+44 ...' / 'تلفن:۰۹۱۲ ...' may (a glued colon then needs a phone word: GLUED_TO_LABEL).
_C = "[0-9:/]:"
# A number ends before a Latin (or Cyrillic, Greek ...) letter or digit ('601234567abc' is an id) but
# may be glued to a Persian/Arabic word ('۰۹۱۲۳۴۵۶۷۸۹تماس': RTL text often drops that space).
_WORD_NOT_ARABIC = r"[^\W\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff]"
_TAIL = rf"(?:{_S}{{1,2}}(?:\({_D}+\){_S}?)?{_D}+)*(?!{_WORD_NOT_ARABIC}|@|[.,\-/:]\w)"
DIGITS = (
    rf"(?:\+(?<!{_B}\+)(?<!{_C}\+)\s?(?:\(\+?{_D}+(?: {_D}+)?\){_S}?)?{_D}+"  # +48 ..., +1 (555) ...
    rf"|\((?<!{_B}\()(?<!{_C}\()\+?{_D}+(?: {_D}+)?\){_S}?{_D}+"  # (22) 621 ..., (+48) 601 ...
    rf"|{_D}(?<!{_B}{_D})(?<!{_C}{_D}){_D}*)"  # 601 ..., 0048 ..., 021-...
    + _TAIL
)
GLUED_TO_LABEL = re.compile(r"[^\W\d]\.?:$")  # 'Phone:', 'tel.:', 'تلفن:' right before the number
PATTERNS = {kind: re.compile(pattern) for kind, pattern in
            (("email", EMAIL), ("iban", IBAN), ("ipv6", IPV6), ("ipv4", IPV4), ("digits", DIGITS))}
DIGIT_RUN = re.compile(r"[0-9]+")
NOT_SEPARATOR = re.compile(r"[0-9()+]")
TO_ASCII = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

IMAGE_SUFFIXES = {"png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tif", "tiff", "avif", "css", "js"}
# Words that make a number a phone number / a dotted quad an address (searched just before it).
PHONE_WORDS = re.compile(
    r"(?i:\btel\b|\btel\.|\b(?:tele)?phones?\b|\bcall\b|\bfax\b|\bmobile\b|\bcell\b|\bcontact\b|whatsapp|\bsms\b|\bdial\b|hotline|reach us|"
    r"telefon|\bkom\b|\bkom\.|komórk|zadzwoń|dzwoń|kontakt|numer|"
    r"تلفن|تماس|شماره|همراه|موبایل|فکس|نمابر)|☎|📞"
)
ADDRESS_WORDS = re.compile(
    r"(?i:\bip\b|address|addr|host|server|\bdns\b|\bping\b|\bssh\b|connect|gateway|\bpeer|client|proxy|"
    r"adres|serwer|آدرس|سرور|آی\u200cپی)"
)
VERSION_WORDS = re.compile(r"(?i:version|\bver\b|\bver\.|\bv$|release|build|wersja|نسخه|firmware|kernel)\W{0,3}$")
SECTION_WORDS = re.compile(
    r"(?i:section|sect|sekcja|rozdział|chapter|chap|figure|table|example|rysunek|tabela|przykład|"
    r"قسمت|بخش|فصل|شکل|جدول|مثال|قسم|انظر|see|\bcf|siehe|voir|vedi|véase|veja|patrz|zobacz|viz|第|§)\W{0,3}$"
)
CURRENCY_AFTER = re.compile(
    r"\s?(?:zł|pln|usd|eur|gbp|irr|irt|\$|€|£|ریال|تومان|dollars?|euros?|złotych|rials?|tomans?)(?!\w)", re.I
)
SECTION_TITLE_AFTER = re.compile(r"(?:,|\s?[–—-])?\s?[“”\"«„‘’'»「『]|\s?節")  # '9.2.1.4, “Title”', '9.2.1.4 – „Title“'
TABLE_NEIGHBOUR_BEFORE = re.compile(r"(?<![\w+])[0-9]+[ \t]+$")  # another number just before, same line
TABLE_NEIGHBOUR_AFTER = re.compile(r"[ \t]+[0-9]")  # another number just after, same line
ISBN_BEFORE = re.compile(r"(?i:isbn(?:-1[03])?)\W{0,3}$")
DATE_PARTS = re.compile(r"(?=(?<![0-9])([0-9]+)([.\-/ ])([0-9]+)\2([0-9]+)(?![0-9]))")

IBAN_LENGTHS = dict(
    (code[:2], int(code[2:]))
    for code in (
        "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18 DO28 EE20 EG29 "
        "ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 IE22 IL23 IQ23 IR26 IS26 IT27 JO30 "
        "KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 "
        "PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 "
        "UA29 VA22 VG24 XK20 YE30"
    ).split()
)


# --- validators -----------------------------------------------------------------------------------
def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


CARD_GROUPINGS = {(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 4, 2), (4, 4, 4, 1), (4, 4, 5)}


def is_card(groups: list[str], separators: set[str]) -> bool:
    digits = "".join(groups)
    if not 13 <= len(digits) <= 19 or len(separators) > 1:
        return False
    if len(groups) > 1 and tuple(map(len, groups)) not in CARD_GROUPINGS:
        return False
    if not issued_prefix(digits):
        return False  # compact timestamps (20240315103000), ids
    return len(set(digits)) > 1 and luhn_valid(digits)


def issued_prefix(digits: str) -> bool:
    """Whether a card network issues numbers of this length with this prefix."""
    n, head2, head4 = len(digits), int(digits[:2]), int(digits[:4])
    if digits[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= head2 <= 55 or 2221 <= head4 <= 2720:
        return n == 16  # Mastercard
    if head2 in (34, 37):
        return n == 15  # American Express
    if 2200 <= head4 <= 2204 or 3528 <= head4 <= 3589 or head2 in (36, 38, 39) or 300 <= int(digits[:3]) <= 305:
        return 14 <= n <= 19  # Mir, JCB, Diners
    if head2 == 50 or 56 <= head2 <= 69:
        return 13 <= n <= 19  # Maestro, Discover, UnionPay, RuPay, Iranian Shetab cards (5x/6x, 16 digits)
    return digits.startswith("9919") and n == 16  # Iranian bank cards outside the 5x/6x ranges


def iban_valid(compact: str) -> bool:
    if len(compact) != IBAN_LENGTHS.get(compact[:2]):
        return False  # not an IBAN country, or not its length
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def iban_span(candidate: str) -> int | None:
    """Characters of `candidate` making up a valid IBAN (a trailing word may have been taken in), or None."""
    expected = IBAN_LENGTHS.get(candidate[:2])
    for length in [expected] if expected else []:
        taken = chars = 0
        for chars, ch in enumerate(candidate, start=1):
            if ch != " ":
                taken += 1
                if taken == length:
                    break
        if taken == length and (chars == len(candidate) or candidate[chars] == " "):
            if iban_valid(candidate[:chars].replace(" ", "")):
                return chars
    return None


def is_isbn(digits: str) -> bool:
    if len(digits) == 13 and digits.startswith(("978", "979")):
        return sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits)) % 10 == 0
    if len(digits) == 10:
        return sum(int(d) * (10 - i) for i, d in enumerate(digits)) % 11 == 0
    return False


def _year(group: str) -> bool:
    return len(group) == 4 and (1300 <= int(group) <= 1499 or 1800 <= int(group) <= 2199)


def _day_or_month(group: str) -> bool:
    return len(group) <= 2 and 1 <= int(group) <= 31


def contains_date(text: str) -> bool:
    """yyyy-mm-dd, dd.mm.yyyy (Gregorian or Persian solar years) or dd.mm.yy within `text`."""
    for match in DATE_PARTS.finditer(text):
        first, sep, middle, last = match.groups()
        if _year(first) and _day_or_month(middle) and _day_or_month(last):
            return True
        if len(first) == 4 and len(middle) == len(last) == 2 and 1 <= int(middle) <= 12 and 1 <= int(last) <= 31:
            return True  # ISO yyyy-mm-dd of any year ('9999-12-31')
        if _day_or_month(first) and _day_or_month(middle):
            if _year(last) or (sep == "." and len(last) == 2 and int(middle) <= 12):
                return True
    return False


@functools.cache
def _phonenumbers():
    import phonenumbers

    return phonenumbers


ASCENDING, DESCENDING = "01234567890123456789", "98765432109876543210"
NUMBERS_ONLY_LINE = re.compile(r"[ \t]*[0-9][0-9 \t.,]*")


def in_number_column(match: re.Match) -> bool:
    """Whether the line of `match` holds only numbers and so does the line above or below it."""
    text, start, end = match.string, match.start(), match.end()
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    if not NUMBERS_ONLY_LINE.fullmatch(text, line_start, line_end):
        return False
    above_start = text.rfind("\n", 0, max(line_start - 1, 0)) + 1
    if line_start > 0 and NUMBERS_ONLY_LINE.fullmatch(text, above_start, line_start - 1):
        return True
    below_end = text.find("\n", line_end + 1)
    below_end = len(text) if below_end < 0 else below_end
    return line_end < len(text) and NUMBERS_ONLY_LINE.fullmatch(text, line_end + 1, below_end) is not None


def _before(match: re.Match, chars: int) -> str:
    text, start = match.string, match.start()
    return text[max(0, start - chars) : start]


def _without_dropped_trunk(text: str, digits: str, region: str) -> str:
    """Polish numbers still written with the trunk '0' dropped in 2005 ('(012) 345 67 89') without it."""
    if region == "PL" and len(digits) == 10 and digits[0] == "0":
        return text.replace("0", "", 1)
    return text


class PIIReplacer:
    """Finds and replaces PII in texts; counts replacements by kind (email, phone, ip, card, iban)."""

    def __init__(self, config: PIIConfig):
        self.config = config
        self.replaced: Counter = Counter()
        self.placeholders = {kind: getattr(config, f"{kind}_placeholder") for kind in KINDS}
        self.enabled = {kind for kind in KINDS if getattr(config, kind)}
        self.found: list[tuple[str, str]] | None = None  # (kind, value) of each replacement, when recording

    def regions(self, lang: Any = None, region: Any = None) -> list[str]:
        regions = list(self.config.regions.get(base_language(lang) or "", self.config.fallback_regions))
        if isinstance(region, str) and region:
            regions.insert(0, region.upper())
        return regions

    def scrub(self, text: str, lang: Any = None, region: Any = None) -> str:
        """`text` with PII replaced; `lang` and `region` choose the phone regions."""
        if not self.enabled:
            return text
        regions: list[str] | None = None

        def ip(kind: str) -> Callable[[re.Match], str]:
            return lambda match: self._hit("ip", match.group()) if self._ip(match, kind) else match.group()

        def number(match: re.Match) -> str:
            nonlocal regions
            if regions is None:
                regions = self.regions(lang, region)
            found = self._digits(match, regions)
            return self._hit(found, match.group()) if found else match.group()

        if "email" in self.enabled and "@" in text or "email" in self.enabled and AT_WORD.search(text):
            text = PATTERNS["email"].sub(self._email_match, text) if AT_WORD.search(text) else self._at_emails(text)
        if "iban" in self.enabled:
            text = PATTERNS["iban"].sub(self._iban, text)
        if "ip" in self.enabled:
            if IPV6_GATE.search(text):
                text = PATTERNS["ipv6"].sub(ip("ipv6"), text)
            text = PATTERNS["ipv4"].sub(ip("ipv4"), text)
        if "phone" in self.enabled or "card" in self.enabled:
            text = PATTERNS["digits"].sub(number, text)
        return text

    def _at_emails(self, text: str) -> str:
        """`text` with plain 'local@domain' addresses replaced: the same addresses EMAIL finds."""
        parts, last = [], 0
        for match in AT_DOMAIN.finditer(text):
            at = match.start()
            local = LOCAL_PART_END.search(text, max(last, at - 64), at)
            if local is None or (local.start() > 0 and LOCAL_BOUNDARY.match(text, local.start() - 1)):
                continue
            value = text[local.start() : match.end()]
            if self._email(value):
                parts += [text[last : local.start()], self._hit("email", value)]
                last = match.end()
        return "".join(parts) + text[last:] if parts else text

    def _email_match(self, match: re.Match) -> str:
        value = match.group()
        return self._hit("email", value) if self._email(value) else value

    def _iban(self, match: re.Match) -> str:
        value = match.group()
        chars = iban_span(value)
        return value if chars is None else self._hit("iban", value[:chars]) + value[chars:]

    def _hit(self, kind: str, value: str) -> str:
        self.replaced[kind] += 1
        if self.found is not None:
            self.found.append((kind, value))
        return self.placeholders[kind]

    def find(self, text: str, lang: Any = None, region: Any = None) -> list[tuple[str, str]]:
        """The (kind, value) pairs `scrub` would replace, in order."""
        self.found = []
        try:
            self.scrub(text, lang, region)
            return self.found
        finally:
            self.found = None

    def _email(self, value: str) -> bool:
        domain = re.split(r"@|\s*[\[({<]\s*(?i:at)\s*[\])}>]\s*", value, maxsplit=1)[-1]
        return domain.rsplit(".", 1)[-1].lower() not in IMAGE_SUFFIXES

    def _ip(self, match: re.Match, kind: str) -> bool:
        value = match.group()
        if kind == "ipv6":
            if value.count(":") < 2 or not any(ch.isdigit() for ch in value):
                return False  # 'a::b' and 'dead::beef' are code, not addresses
            if value.endswith("::") or (value.startswith("::") and not value.lower().startswith("::ffff:")):
                return False  # a prefix ('2001:db8:31a0::'), or '::1:123' (loopback and a port)
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        if self.config.public_ips_only and not address.is_global:
            return False
        if kind == "ipv6":  # not multicast groups, not the ::/96 block ('0000:...:0abc:0007:0def')
            return not address.is_multicast and int(address) >> 32 != 0
        octets = [int(o) for o in value.split(".")]
        packed = int(address)
        if octets[3] == 0 or octets[0] == 0 or packed == 0xFFFFFFFF:
            return False  # network addresses, 0.x, broadcast
        if (packed ^ 0xFFFFFFFF) & ((packed ^ 0xFFFFFFFF) + 1) == 0 and octets[0] == 255:
            return False  # netmasks: ones then zeros
        before = _before(match, 24)
        if VERSION_WORDS.search(before) or SECTION_WORDS.search(before):
            return False
        text, end = match.string, match.end()
        line_start = text.rfind("\n", 0, match.start()) + 1
        at_line_start = not text[line_start : match.start()].strip(" \t#*>")
        if at_line_start and text[end : end + 2] == ". ":
            return False  # a numbered heading: '6.7.3.3. Old packages'
        if SECTION_TITLE_AFTER.match(text, end):
            return False  # a cross-reference in any language: 'قسم 9.2.1.4, “...”', 'Abschnitt 9.2.1.4, „...“'
        if max(octets) < 32:  # '1.2.3.4', '11.1.7.3': versions and section numbers unless something says address
            window = text[max(0, match.start() - 60) : match.start()]
            return ADDRESS_WORDS.search(window) is not None or (at_line_start and text[end : end + 1] in " \t")
        return True

    def _digits(self, match: re.Match, regions: list[str]) -> str | None:
        """'card', 'phone' or None for a run of digits."""
        value = match.group()
        if len(value) < 7:
            return None  # most digit runs: years, counts, section numbers
        ascii_value = value.translate(TO_ASCII)
        groups = DIGIT_RUN.findall(ascii_value)
        digits = "".join(groups)
        if len(digits) < 7 or IBAN_HEAD.search(_before(match, 5)):
            return None  # short, or the rest of an account number that failed its IBAN check
        separators = set(NOT_SEPARATOR.sub("", ascii_value).replace("\u00a0", " "))
        if "card" in self.enabled and "(" not in value and "+" not in value and is_card(groups, separators):
            return "card"
        if "phone" in self.enabled and self._phone(match, ascii_value, groups, digits, separators, regions):
            return "phone"
        return None

    def _phone(self, match, text: str, groups: list[str], digits: str, separators: set[str], regions) -> bool:
        if len(digits) > 15 or len(separators - {" "}) > 1:
            return False  # '555-123.4567': mixed separators are not a phone
        if {" ", "."} <= separators:
            return False  # '123 456 789.00': thousands and decimals
        if separators == {"."} and len(groups) == 4 and all(len(g) <= 3 for g in groups):
            return False  # a dotted quad (a private or documentation IP address the IP rules kept)
        if TABLE_NEIGHBOUR_BEFORE.search(_before(match, 12)) or TABLE_NEIGHBOUR_AFTER.match(match.string, match.end()):
            return False  # a row of a numeric table: '/dev/sda1 2048 4095 2048 1M'
        if in_number_column(match):
            return False  # a line of numbers under or over another: program output, tables
        if len(groups) == 1 and (len(set(digits)) == 1 or digits in ASCENDING or digits in DESCENDING):
            return False  # '0123456789', '1111111'

        if contains_date(text):
            return False
        before = _before(match, 40)
        if ISBN_BEFORE.search(before) or (len(groups) > 3 and "-" in separators and is_isbn(digits)):
            return False
        if VERSION_WORDS.search(before) or SECTION_WORDS.search(before):
            return False
        if CURRENCY_AFTER.match(match.string, match.end()) or before.rstrip().endswith(("$", "€", "£")):
            return False
        if separators == {"."} and len(groups) < 3:
            return False  # decimals
        if len(groups) == 2 and len(groups[0]) == len(groups[1]) and "(" not in text:
            return False  # ranges: 1000-2000
        pn = _phonenumbers()
        international = text.startswith(("+", "00"))
        context = PHONE_WORDS.search(before) is not None
        if not context and GLUED_TO_LABEL.search(before):
            return False  # 'id:1234567', 'key:601234567': only a phone word may be glued to its number
        if international:
            try:
                number = pn.parse("+" + text.lstrip("+")[2:] if text.startswith("00") else text, None)
            except pn.NumberParseException:
                return False
            return pn.is_valid_number(number) or (context and pn.is_possible_number(number))
        unseparated = len(groups) == 1
        trunk = len(groups) >= 3 and groups[0] in ("0", "1") and all(len(g) >= 2 for g in groups[1:])  # 1-800-..
        if (any(len(g) == 1 for g in groups) and not trunk) or (all(len(g) == 2 for g in groups) and not digits.startswith("0")):
            return False  # '10.0.19041.1', '1 0 0 1', table rows '12 34 56 78 90' (but French '01 23 45 67 89')
        thousands = (
            len(groups) >= 3
            and len(groups[0]) <= 3
            and all(len(g) == 3 for g in groups[1:])
            and separators <= {" ", "."}
        )
        if context and not unseparated:  # a phone word: any region the config knows may be the one
            regions = list(dict.fromkeys([*regions, *(r for rs in self.config.regions.values() for r in rs)]))
        for region in regions:
            try:
                number = pn.parse(_without_dropped_trunk(text, digits, region), region)
            except pn.NumberParseException:
                continue
            if not pn.is_valid_number(number):
                continue
            if unseparated:  # '09121234567'; a bare '601234567' only after a phone word
                mobile = pn.number_type(number) == pn.PhoneNumberType.MOBILE
                return (digits.startswith("0") and len(digits) >= 10) or (context and mobile)
            if context:
                return True
            if thousands:  # '601 234 567' is a Polish mobile; '81 217 261' (8 digits) a count more often than not
                mobile = pn.number_type(number) == pn.PhoneNumberType.MOBILE
                return mobile and "." not in separators and len(digits) >= 9
            return True
        if context and not unseparated:
            for region in regions[:1]:
                try:
                    return pn.is_possible_number(pn.parse(text, region))
                except pn.NumberParseException:
                    return False
        return False


@register_step("pii", config=PIIConfig, group="scrub", order=22, help="PII into typed placeholders")
class PIIScrubber(Step):
    """Replaces e-mails, phones, IPs, cards and IBANs with placeholders; counts replacements by kind."""

    def __init__(self, config: PIIConfig, on_remove: RemoveCallback | None = None):
        super().__init__(on_remove)
        self.config = config
        self.scrubber = PIIReplacer(config)
        self.documents_changed = 0

    @property
    def replaced(self) -> Counter:
        return self.scrubber.replaced

    def scrub_document(self, doc: Document) -> Document:
        text = self.scrubber.scrub(doc.text, doc.meta.get("lang"), doc.meta.get("region"))
        if text == doc.text:
            return doc
        self.documents_changed += 1
        return Document(doc.id, text, doc.meta)

    def scrub(self, text: str, lang: Any = None) -> str:
        return self.scrubber.scrub(text, lang)

    def run(self, docs: Iterable[Document]) -> Iterator[Document]:
        for doc in docs:
            self.documents_in += 1
            self.documents_out += 1
            yield self.scrub_document(doc)

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "changed": self.documents_changed}

    def summary(self) -> dict[str, Any]:
        return {"pii_replaced": dict(sorted(self.replaced.items()))}
