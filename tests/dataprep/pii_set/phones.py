"""Phone numbers as people write them, generated from the numbering plans (not from the scrubber's examples).

Numbers are drawn from `phonenumbers`' own metadata: random digits after each region's example number's
leading digits, kept only when `phonenumbers` says the number is valid and of the wanted type (mobile,
fixed line, toll free). Each number is then written

- as `phonenumbers` formats it (NATIONAL, INTERNATIONAL, E164), and
- in the groupings people use in that country (Polish 'xxx xxx xxx', 'xxx-xxx-xxx', '+48 xx xxx xx xx',
  '(xx) xxx xx xx'; Iranian '09xx xxx xxxx', '+98 9xx xxx xxxx' in Latin, Persian and Arabic-Indic
  digits; US '(xxx) xxx-xxxx', 'xxx.xxx.xxxx', '+1 xxx xxx xxxx'; UK '07xxx xxxxxx', '+44 (0)20 xxxx xxxx'),

inside sentences of the document's language, with and without a phone word nearby.

    python tests/dataprep/pii_set/phones.py      # recall per region and grouping, and every miss
"""

from __future__ import annotations

import random
import sys
from collections import Counter

import phonenumbers as pn

T = pn.PhoneNumberType
PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _groups(digits: str, sizes: tuple[int, ...]) -> list[str]:
    out, at = [], 0
    for size in sizes:
        out.append(digits[at : at + size])
        at += size
    assert at == len(digits), (digits, sizes)
    return out


def _pl(nsn: str, kind: int) -> list[str]:
    if kind == T.FIXED_LINE:  # area code (2 digits) + 7
        a, b, c, d = _groups(nsn, (2, 3, 2, 2))
        return [f"{a} {b} {c} {d}", f"({a}) {b} {c} {d}", f"+48 {a} {b} {c} {d}", f"{a} {b}-{c}-{d}",
                f"{a}-{b}-{c}-{d}", f"+48 ({a}) {b} {c} {d}", f"{a} {b}{c}{d}", f"0{a} {b} {c} {d}",
                f"(0{a}) {b} {c} {d}", f"+48{nsn}", f"0048 {a} {b} {c} {d}"]
    a, b, c = _groups(nsn, (3, 3, 3))
    x, y, z, w = _groups(nsn, (2, 3, 2, 2))
    return [f"{a} {b} {c}", f"{a}-{b}-{c}", f"+48 {a} {b} {c}", f"+48 {a}-{b}-{c}", f"+48{nsn}",
            f"(+48) {a} {b} {c}", f"0048 {a} {b} {c}", f"+48 {x} {y} {z} {w}", f"{a} {b} {c}".replace(" ", "\u00a0")]


def _ir(nsn: str, kind: int) -> list[str]:
    if kind == T.MOBILE:  # 9xx xxx xxxx
        a, b, c = _groups(nsn, (3, 3, 4))
        latin = [f"0{a} {b} {c}", f"0{a}-{b}-{c}", f"0{a}{b}{c}", f"+98 {a} {b} {c}", f"+98{nsn}",
                 f"0098 {a} {b} {c}", f"0{a} {b} {c[:2]} {c[2:]}", f"0{a} {b}{c}", f"+98 {a}-{b}-{c}",
                 f"(+98) {a} {b} {c}", f"0{a}-{b}{c}"]
    else:  # area code (2 digits) + 8
        a, b, c = _groups(nsn, (2, 4, 4))
        latin = [f"0{a} {b} {c}", f"0{a}-{b}{c}", f"(0{a}) {b} {c}", f"+98 {a} {b} {c}", f"0{a}-{b}-{c}",
                 f"0{a} {b}{c}", f"+98 ({a}) {b}{c}"]
    return latin + [s.translate(PERSIAN) for s in latin] + [s.translate(ARABIC_INDIC) for s in latin[:4]]


def _us(nsn: str, kind: int) -> list[str]:
    a, b, c = _groups(nsn, (3, 3, 4))
    return [f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"{a} {b} {c}", f"+1 {a} {b} {c}",
            f"+1-{a}-{b}-{c}", f"1-{a}-{b}-{c}", f"+1 ({a}) {b}-{c}", f"1 ({a}) {b}-{c}", f"({a}) {b} {c}",
            f"+1.{a}.{b}.{c}"]


def _gb(nsn: str, kind: int) -> list[str]:
    if kind == T.MOBILE:  # 7xxx xxxxxx
        a, b = _groups(nsn, (4, 6))
        return [f"0{a} {b}", f"0{a} {b[:3]} {b[3:]}", f"+44 {a} {b}", f"+44 (0){a} {b}", f"+44 {a} {b[:3]} {b[3:]}",
                f"0{a}-{b}", f"+44{nsn}"]
    if nsn.startswith("2"):  # London-style 2x xxxx xxxx
        a, b, c = _groups(nsn, (2, 4, 4))
        return [f"0{a} {b} {c}", f"(0{a}) {b} {c}", f"+44 {a} {b} {c}", f"+44 (0){a} {b} {c}", f"0{a}-{b}-{c}"]
    if kind == T.TOLL_FREE:
        a, b, c = _groups(nsn, (3, 3, 4))
        return [f"0{a} {b} {c}", f"+44 {a} {b} {c}"]
    a, b, c = _groups(nsn, (3, 3, 4)) if nsn[1] == nsn[3] == "1" or nsn[2] == "1" else _groups(nsn, (4, 3, 3))
    return [f"0{a} {b} {c}", f"(0{a}) {b} {c}", f"+44 {a} {b} {c}", f"0{a} {b}{c}", f"+44 (0){a} {b}{c}"]


WRITERS = {"PL": _pl, "IR": _ir, "US": _us, "GB": _gb}
LANG = {"PL": "pl", "IR": "fa", "US": "en", "GB": "en"}
TYPES = {"PL": (T.MOBILE, T.FIXED_LINE), "IR": (T.MOBILE, T.FIXED_LINE),
         "US": (T.FIXED_LINE_OR_MOBILE,), "GB": (T.MOBILE, T.FIXED_LINE, T.TOLL_FREE)}
# Sentences: the first ones name the number a phone ('tel.', 'تماس', 'call'), the rest do not.
SENTENCES = {
    "en": ["Call us on {} today.", "Tel: {}", "Mobile {} (evenings)", "Phone:{}", "(tel. {})", "Text me on {}.",
           "Ask for Mary, {}, on weekdays.", "Office\n{}\nOpen 9-5", "Jim Baker - {} - Leeds", "Mary: {}",
           "Leeds office {} or the shop.", "{}"],
    "fa": ["برای اطلاعات بیشتر با شماره {} تماس بگیرید.", "تلفن: {}", "موبایل {} (عصرها)", "تلفن:{}",
           "شماره تماس \u200f{}", "با {}تماس بگیرید", "آقای رضایی، {}، روزهای کاری.", "دفتر مرکزی\n{}\nساعت ۸ تا ۱۶",
           "علی کریمی - {} - تهران", "آقای رضایی: {}", "دفتر تهران {}،", "{}"],
    "pl": ["Zadzwoń pod numer {} jeszcze dziś.", "tel. {}", "kom. {} (wieczorem)", "tel.:{}", "(tel. {})",
           "nr tel. {}, e-mail poniżej", "Pani Anna, {}, w dni robocze.", "Biuro\n{}\nczynne 8-16",
           "Jan Nowak - {} - Kraków", "Jan Nowak: {}", "Sklep w Krakowie {} lub na miejscu.", "{}"],
}
WORDED = 6  # the first six sentences of each language have a phone word


def shape(value: str) -> str:
    """'601 234 567' for any value grouped as '512 345 678' (digits replaced by a fixed sequence)."""
    digits = iter("601234567890123456789" if not value.startswith("(") else "12345678901234567890")
    return "".join(next(digits) if ch.isdigit() else ch for ch in value)


def numbers(region: str, kind: int, count: int, rng: random.Random) -> list[str]:
    """`count` national significant numbers valid for `region` and of type `kind`."""
    example = pn.example_number_for_type(region, T.FIXED_LINE if kind == T.FIXED_LINE_OR_MOBILE else kind)
    nsn = pn.national_significant_number(example)
    found: list[str] = []
    while len(found) < count:
        keep = rng.randint(1, 3)
        candidate = nsn[:keep] + "".join(rng.choice("0123456789") for _ in nsn[keep:])
        number = pn.parse("+" + str(example.country_code) + candidate, None)
        if pn.is_valid_number(number) and pn.number_type(number) in (kind, T.FIXED_LINE_OR_MOBILE):
            digits = candidate
            if len(set(digits[-7:])) > 2 and digits not in found:
                found.append(digits)
    return found


def library_formats(region: str, nsn: str) -> list[str]:
    number = pn.parse("+" + str(pn.country_code_for_region(region)) + nsn, None)
    return [pn.format_number(number, style) for style in
            (pn.PhoneNumberFormat.NATIONAL, pn.PhoneNumberFormat.INTERNATIONAL, pn.PhoneNumberFormat.E164)]


def cases(per_type: int = 6, seed: int = 18) -> list[dict]:
    """[{region, lang, grouping, text, value, worded}]: each `value` must be found as a phone in `text`."""
    rng = random.Random(seed)
    out = []
    for region, writer in WRITERS.items():
        lang = LANG[region]
        for kind in TYPES[region]:
            for nsn in numbers(region, kind, per_type, rng):
                written = dict.fromkeys(library_formats(region, nsn) + writer(nsn, kind))
                for grouping, value in enumerate(written):
                    index = rng.randrange(len(SENTENCES[lang]))
                    out.append({"region": region, "lang": lang, "kind": int(kind), "grouping": grouping,
                                "text": SENTENCES[lang][index].format(value), "value": value, "worded": index < WORDED})
    return out


def misses(found_by) -> tuple[list[dict], int]:
    """The cases whose value `found_by(text, lang)` (a list of (kind, value)) does not report as a phone."""
    all_cases = cases()
    return [c for c in all_cases if ("phone", c["value"]) not in found_by(c["text"], c["lang"])], len(all_cases)


def main() -> int:
    from dataprep.steps.pii import PIIConfig, PIIReplacer

    replacer = PIIReplacer(PIIConfig())
    missed, total = misses(replacer.find)
    by_region = Counter(c["region"] for c in cases())
    missed_by_region = Counter(c["region"] for c in missed)
    for region, n in by_region.items():
        print(f"{region}: recall {1 - missed_by_region[region] / n:.3f} ({n} cases)")
    for case in missed:
        print("MISS", case["region"], repr(case["text"]))
    print(f"total recall {1 - len(missed) / total:.3f} of {total}")
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())


def _pesel(rng: random.Random) -> str:
    digits = f"{rng.randint(40, 99):02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.randint(0, 99999):05d}"
    check = (10 - sum(int(d) * w for d, w in zip(digits, (1, 3, 7, 9) * 3)) % 10) % 10
    return digits + str(check)


def _nip(rng: random.Random) -> str:
    while True:
        digits = f"{rng.randint(100, 999)}{rng.randint(0, 999999):06d}"
        check = sum(int(d) * w for d, w in zip(digits, (6, 5, 7, 2, 3, 4, 5, 6, 7))) % 11
        if check < 10:
            d = digits + str(check)
            return f"{d[:3]}-{d[3:6]}-{d[6:8]}-{d[8:]}"


def _thousands(rng: random.Random, sep: str) -> str:
    """A count written in thousands: 'dd ddd ddd' or 'd ddd ddd ddd'. Not 'ddd ddd ddd': a count between
    100 and 999 million written with spaces is also how Poles write mobiles ('601 234 567'), and the
    scrubber takes it for one when the number is a valid mobile and no currency follows."""
    groups = 2 if sep == "." else rng.choice((2, 3))  # four dotted groups are an IP address
    head = str(rng.randint(1, 99)) if groups == 2 else str(rng.randint(1, 9))
    return sep.join([head] + [f"{rng.randint(0, 999):03d}" for _ in range(groups)])


def negatives(count: int = 40, seed: int = 18) -> list[dict]:
    """[{lang, text}] that hold digit groups but no phone number: ids, counts, amounts, dates, accounts."""
    rng = random.Random(seed)
    makers = {
        "pl": [lambda: f"PESEL {_pesel(rng)}", lambda: f"NIP {_nip(rng)}", lambda: f"Ludność: {_thousands(rng, ' ')} osób.",
               lambda: f"Kwota {_thousands(rng, ' ')} zł brutto", lambda: f"Faktura nr {rng.randint(1, 999)}/{rng.randint(1, 12):02d}/2024",
               lambda: f"Nakład {_thousands(rng, '.')} egzemplarzy"],
        "fa": [lambda: f"جمعیت {_thousands(rng, ' ').translate(PERSIAN)} نفر", lambda: f"مبلغ {_thousands(rng, ',').translate(PERSIAN)} ریال",
               lambda: f"تاریخ ۱۴۰{rng.randint(0, 3)}/{rng.randint(1, 12):02d}/{rng.randint(1, 29):02d}".translate(PERSIAN),
               lambda: f"کد پستی {rng.randint(10000, 99999)}-{rng.randint(10000, 99999)}".translate(PERSIAN)],
        "en": [lambda: f"Population: {_thousands(rng, ',')} people", lambda: f"Revenue of ${_thousands(rng, ',')} in 2023",
               lambda: f"Order #{rng.randint(10**8, 10**10)} shipped", lambda: f"{_thousands(rng, ' ')} downloads so far",
               lambda: f"Invoice {rng.randint(2000, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}-{rng.randint(1, 999):03d}"],
    }
    return [{"lang": lang, "text": rng.choice(makers[lang])()} for lang in makers for _ in range(count)]
