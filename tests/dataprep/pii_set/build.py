"""Builds pii_labelled.jsonl: PII spans in English, Persian and Polish text, and hard negatives.

Run `python tests/dataprep/pii_set/build.py` to regenerate (deterministic). Every record is
{"id", "lang", "text", "spans": [{"type", "value"}], "hard_negative": bool}; a span's value occurs in
the text exactly where it was put. Card numbers and IBANs are made valid (Luhn, mod-97) here; labels
come from construction, never from the scrubber.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).with_name("pii_labelled.jsonl")
FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

EMAILS = {
    "en": ["john.smith@example.com", "j.doe+news@mail.co.uk", "support@acme-corp.io", "alice_w@uni.edu",
           "BOB@EXAMPLE.ORG", "first.last@sub.domain.example.net", "x9@a1.de", "noreply@github.com",
           "sales-team@big-company.co.jp", "o'brien@example.ie"],
    "fa": ["ali.rezaei@gmail.com", "info@shop.ir", "m.ahmadi@ut.ac.ir", "support@digikala.com",
           "sara_k@yahoo.com", "contact@news-agency.ir"],
    "pl": ["info@firma.pl", "kontakt@sklep-online.com.pl", "jan.kowalski@poczta.onet.pl",
           "biuro@kancelaria-nowak.pl", "a.wisniewska@uw.edu.pl", "zamowienia@hurtownia24.pl"],
}
EMAIL_TEMPLATES = {
    "en": ["Please write to {v} for details.", "Contact: {v}", "Send your CV to {v} before Friday.",
           "Questions? Email us at {v}.", "<a href=\"mailto:{v}\">mail us</a>", "Reported by {v} on the list.",
           "Reply-To: {v}"],
    "fa": ["برای اطلاعات بیشتر به {v} ایمیل بزنید.", "ایمیل: {v}", "لطفاً رزومه خود را به {v} بفرستید.",
           "پشتیبانی از طریق {v} پاسخ می‌دهد."],
    "pl": ["Pisz na adres {v}.", "E-mail: {v}", "Zgłoszenia prosimy przesyłać na {v} do piątku.",
           "Kontakt mailowy: {v}, odpowiadamy w 24 h."],
}
CJK_EMAILS = [
    ("zh", "请发送邮件至{v}获取更多信息。", "wang.li@example.cn"),
    ("zh", "如有问题请联系{v}或者拨打客服电话。", "service@shop.com.cn"),
    ("ko", "문의는 {v}으로 보내주세요.", "kim@example.co.kr"),
    ("ko", "자세한 내용은{v}에서확인하세요", "help@naver.com"),
    ("ja", "詳細は{v}までご連絡ください。", "tanaka@example.jp"),
    ("ja", "お問い合わせ：{v}（平日のみ）", "info@company.co.jp"),
]
OBFUSCATED = [("en", "Write to {v} (spam-safe).", "jan [at] example [dot] org"),
              ("en", "contact: {v}", "user(at)example.co.uk")]

PHONES = {
    "en": ["+1 202-555-0143", "(212) 555-0123", "020 7946 0958", "+44 20 7946 0958", "+1 415 555 2671",
           "+61 2 9374 4000", "(617) 253-1000", "+353 1 896 1000", "0161 496 0000", "+14155552671",
           "+1 (617) 253-1000", "617-253-1000"],
    "fa": ["۰۹۱۲ ۳۴۵ ۶۷۸۹", "0912 345 6789", "09121234567", "021-88776655", "۰۲۱-۸۸۷۷۶۶۵۵", "+98 912 345 6789",
           "٠٩١٢ ٣٤٥ ٦٧٨٩", "0935-123-4567", "(021) 6616 2345", "+98 21 6616 2345", "۰۹۳۵۱۲۳۴۵۶۷", "0098 912 345 6789"],
    "pl": ["601 234 567", "+48 601 234 567", "22 123 45 67", "+48 22 123 45 67", "(22) 621 43 21", "512-345-678",
           "0048 601 234 567", "12 345 67 89", "71 320 20 00", "+48 71 320 20 00", "790 123 456"],
}
PHONE_TEMPLATES = {
    "en": ["Call us at {v}.", "Phone: {v}", "You can reach me on {v} after 5pm.", "Customer service ({v}) is open daily.",
           "For bookings ring {v} or visit the desk.", "Tel. {v} | Fax: none", "Our hotline {v} answers 24/7."],
    "fa": ["برای اطلاعات بیشتر با شماره {v} تماس بگیرید.", "تلفن: {v}", "شماره همراه من {v} است.",
           "تلفن تماس دفتر: {v} (ساعت ۸ تا ۱۶)", "با {v} تماس بگیرید."],
    "pl": ["Zadzwoń pod numer {v}.", "Tel. {v}", "Kontakt: {v}, pon.–pt. 8–16.", "Nasz numer telefonu to {v}.",
           "W razie pytań dzwoń: {v}", "tel. kom. {v}"],
}
IPS = ["93.184.216.34", "151.101.1.69", "185.199.108.153", "104.16.132.229", "31.13.72.36", "142.250.74.46",
       "212.77.98.9", "5.160.218.10", "78.157.42.100", "2a00:1450:4001:82a::200e", "2606:4700:4700::1111",
       "2001:4860:4860::8888", "8.8.8.8", "1.1.1.1"]
IP_TEMPLATES = {
    "en": ["Connection from {v} refused.", "{v} - - [12/Mar/2024:10:00:01 +0000] \"GET / HTTP/1.1\" 200 512",
           "{v} www.example.org", "Failed password for root from {v} port 22 ssh2", "ping {v} returned 4 packets.",
           "The DNS server is {v}.", "Server address: {v}"],
    "fa": ["سرور روی آدرس {v} در دسترس است.", "آدرس آی‌پی شما {v} ثبت شد.", "{v} کاربر مهمان"],
    "pl": ["Adres IP serwera to {v}.", "Połączenie z {v} zostało zablokowane.", "{v} brama domyślna"],
}
CARD_PREFIXES = ["4", "4", "51", "55", "2221", "34", "37", "6011", "603799", "610433", "589210", "627412", "622106",
                 "502229", "639347", "3530"]
CARD_TEMPLATES = {
    "en": ["Card number: {v}", "Pay with card {v}, exp 12/27.", "My Visa {v} was charged twice.",
           "charged to {v} on 3 May"],
    "fa": ["شماره کارت: {v}", "لطفاً مبلغ را به کارت {v} واریز کنید.", "کارت به کارت به {v} به نام علی رضایی"],
    "pl": ["Numer karty: {v}", "Płatność kartą {v} została odrzucona.", "Przelew na kartę {v}."],
}
IBAN_COUNTRIES = {"DE": "8n10n", "GB": "4a6n8n", "FR": "5n5n11c2n", "PL": "8n16n", "IR": "3n19n", "NL": "4a10n",
                  "ES": "4n4n1n1n10n", "IT": "1a5n5n12c", "CH": "5n12c", "SA": "2n18c", "TR": "5n1n16c", "AE": "3n16n",
                  "AT": "5n11n", "BE": "3n7n2n", "UA": "6n19c", "NO": "4n6n1n"}
IBAN_TEMPLATES = {
    "en": ["IBAN: {v}", "Please transfer the deposit to {v} by Friday.", "Account {v} (BIC DEUTDEFF)."],
    "fa": ["شماره شبا: {v}", "مبلغ را به شبای {v} واریز کنید.", "شبا {v} به نام شرکت"],
    "pl": ["Numer konta: {v}", "Przelew na rachunek {v} (mBank).", "IBAN {v}, tytuł: faktura 12/2024"],
}

# Written forms seen in the wild, one text each: (lang, text, type, value).
EXTRA_POSITIVES = [
    ("en", "e-mail:jan.kowalski@wp.pl", "email", "jan.kowalski@wp.pl"),
    ("en", "Reach me (jan@wp.pl) anytime.", "email", "jan@wp.pl"),
    ("en", "From: Jan <jan@wp.pl>", "email", "jan@wp.pl"),
    ("en", "<a href=\"mailto:jan@wp.pl?subject=Hi\">", "email", "jan@wp.pl"),
    ("en", "Напишите на ivan@mail.ru.", "email", "ivan@mail.ru"),
    ("en", "Call 1-800-273-8255 for help.", "phone", "1-800-273-8255"),
    ("en", "Phone +44 (0)20 7946 0958", "phone", "+44 (0)20 7946 0958"),
    ("en", "mobile 07700 900123", "phone", "07700 900123"),
    ("en", "<a href=\"tel:+48601234567\">call</a>", "phone", "+48601234567"),
    ("pl", "tel. (+48) 601 234 567", "phone", "(+48) 601 234 567"),
    ("pl", "Zadzwoń: +48 601-234-567", "phone", "+48 601-234-567"),
    ("fa", "تماس: +98 (912) 345-6789", "phone", "+98 (912) 345-6789"),
    ("en", "X-Forwarded-For: 93.184.216.34", "ip", "93.184.216.34"),
    ("en", "upstream 185.199.108.153:443 timed out", "ip", "185.199.108.153"),
    ("en", "resolver [2001:4860:4860::8888]:53", "ip", "2001:4860:4860::8888"),
    ("en", "see http://151.101.1.69/index.html", "ip", "151.101.1.69"),
    ("en", "Visa 4111-1111-1111-1111 exp 10/26", "card", "4111-1111-1111-1111"),
    ("en", "MC 5555 5555 5555 4444", "card", "5555 5555 5555 4444"),
    ("en", "Amex 3782 822463 10005", "card", "3782 822463 10005"),
    ("en", "card 4111111111111111", "card", "4111111111111111"),
    ("en", "IBAN GB82 WEST 1234 5698 7654 32", "iban", "GB82 WEST 1234 5698 7654 32"),
    ("en", "IBAN DE89 3704 0044 0532 0130 00 at Commerzbank", "iban", "DE89 3704 0044 0532 0130 00"),
    ("pl", "konto PL61 1090 1014 0000 0712 1981 2874", "iban", "PL61 1090 1014 0000 0712 1981 2874"),
    ("en", "IBAN FR14 2004 1010 0505 0001 3M02 606", "iban", "FR14 2004 1010 0505 0001 3M02 606"),
    ("en", "NL91ABNA0417164300 is the account", "iban", "NL91ABNA0417164300"),
    ("en", "IBAN: GB82 WEST 1234 5698 7654 32 BIC: WESTGB2L", "iban", "GB82 WEST 1234 5698 7654 32"),
]
HARD_NEGATIVES = {
    "en": [
        "Version 1.2.3.4 was released today.", "Upgrade to 10.0.19041.1 first.", "firmware 2.4.1.15 fixes it",
        "the build 1.2.3.4.5.6 is broken", "requires .NET v4.8.0.0 or later", "pip install pkg==1.2.3.4",
        "libfoo-2.10.4.1.tar.gz", "Python 3.12.1 and 3.11.9", "set netmask 255.255.255.0 and 255.255.0.0",
        "subnet 10.0.0.0/8 with mask 255.0.0.0", "Meeting on 2024-03-15 at 10:30.", "Due 15.03.2024 or 03/15/2024.",
        "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2 (paperback)", "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "commit 3f2a9c1d2e and md5 d41d8cd98f00b204e9800998ecf8427e", "It costs $1,299.99 or £1,099.", "Price: 1 299,00 EUR",
        "Values: 1024 2048 4096 8192", "Row: 12 34 56 78 90", "3.14 2.71 1.41 1.73", "100 200 300 400 500 600",
        "Open ports 80, 443, 8080, 8443.", "EXPOSE 8000-8100", "ports 22/tcp 80/tcp 443/tcp",
        "listen 127.0.0.1:8080 and 0.0.0.0:22", "@app.route('/') def index():", "@property\ndef name(self):",
        "@pytest.mark.parametrize('x', [1, 2])", "<img src=\"logo@2x.png\">", "icon@3x.webp and sprite@2x.jpg",
        "timestamp 1700000000000", "epoch 1712345678", "Order #123456789 shipped.", "Invoice 2024/03/000123",
        "Coordinates 52.2297, 21.0122", "see Section 14.3.4.1, Auditing", "6.7.3.3. Old packages",
        "population 38 386 000", "card 1234 5678 9012 3456", "test card 4111 1111 1111 1112",
        "tracking 9400 1000 0000 0000 0000 00", "code DE89 3704 0044 0532 0130 01", "SKU AB12CD34EF56GH78",
        "private host 192.168.1.1 and 10.0.0.1", "bad address 999.1.1.1", "range 1990-2000 and pages 123-456",
        "npm i @babel/core", "follow @jan_kowalski", "The score was 3-2 after 90 minutes.", "Call stack: frame 0x7ffd5e8",
        "UUID 123e4567-e89b-12d3-a456-426614174000", "MAC 00:1a:2b:3c:4d:5e", "std::vector<int> and a::b",
        "Chapter 10, page 200", "in 1999, 2000 and 2001", "1,000,000 users", "12.345.678 people", "pi is 3.14159265",
        "Matrix 1 0 0 0 1 0 0 0 1", "temperature 36.6 and 37.2", "kernel 2.6.32-5-amd64", "Debian 11.20220922",
        "ratio 16:9 at 1920x1080", "2024-01-15T10:30:00Z", "-rw-r--r-- 1 root root 1181 2021-07-27 10:00 file",
        "v1.2.3.4", "Mozilla/5.0 Chrome/115.0.2.1 Safari/537.36", "Windows NT 10.0; Win64", "dated 2024.03.15",
        "years 2019–2024", "5 000 000 km", "1 234 567 bytes", "978-0-306-40615-7", "DE00 0000 0000 0000 0000 00",
        "0000 0000 0000 0000", "ID: 1234-5678-9012-3456", "route fe80::/10 and ::", "at 12:34:56",
        "doc prefix 2001:db8::1", "15/03/2024", "tel: not listed", "@media (max-width: 600px)",
        "user@localhost", "Apache/2.4.41 (Ubuntu)", "OpenSSL 1.1.1w  11 Sep 2023", "HTTP/1.1 200 OK",
        "1.0.0.0/8 is announced", "0.0.0.0", "Build 22621.2428", "node v18.17.1",
        "created 20240315103000", "patent US20230123456A1", "debt 4 000 000 000 000", "/article?id=4111111111",
        "GB00 WEST 1234 5698 7654 32", "serial 5105 1051 0510 5100 2",
    ],
    "fa": [
        "تاریخ ۱۴۰۲/۰۷/۱۵ ثبت شد.", "در تاریخ 1402-07-15 برگزار شد.", "۱۵ مهر ۱۴۰۲", "سال ۱۴۰۲ و ۲۰۲۳",
        "قیمت ۲۵۰٬۰۰۰ تومان", "مبلغ 12 500 000 ریال", "نسخه 1.2.3.4 منتشر شد.", "نسخهٔ ۲.۴.۱.۱۵",
        "کد پستی ۱۹۱۹۶۵۴۱۳۱", "شابک ۹۷۸-۶۰۰-۱۲۳-۴۵۶-۷", "جدول: ۱۲ ۳۴ ۵۶ ۷۸ ۹۰", "پورت‌های 80 و 443 و 8080",
        "ماسک شبکه 255.255.255.0 است.", "فصل ۳.۲.۱", "جمعیت ۸۵ ۰۰۰ ۰۰۰ نفر", "ساعت ۱۰:۳۰",
        "۱۴۰۲/۱۲/۲۹", "تاریخ ۱۴۰۲.۰۷.۱۵", "نسخه ۱.۲.۳.۴", "کد ملی ندارد", "۳ تا ۵ سال",
        "شماره سفارش ۱۲۳۴۵۶۷۸۹", "آدرس محلی 192.168.1.1 است.", "دمای ۳۶.۶ درجه", "۱۲۰۰ تا ۱۵۰۰ متر",
    ],
    "pl": [
        "Wersja 1.2.3.4 jest dostępna.", "Spotkanie 15.03.2024 o 10:30.", "dnia 2024-03-15", "15 marca 2024 r.",
        "cena 4 599 zł", "Budżet: 1 234 567 zł", "koszt 1.234.567,89 PLN", "120 345 678 mieszkańców Ziemi",
        "NIP 123-456-32-18", "REGON 123456785", "maska 255.255.255.0", "Rozdział 3.2.1 opisuje to.",
        "ISBN 978-83-01-00000-1", "Tabela: 10 20 30 40 50", "porty 80, 443 i 8080", "strony 123-456",
        "Sekcja 14.3.4.1", "liczba ludności 38 386 000", "kod pocztowy 00-950 Warszawa", "godz. 8–16",
        "numer zamówienia 2024/03/000123", "adres lokalny 10.0.0.1",
    ],
}


def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    for check in "0123456789":
        digits = body + check
        total = sum((int(d) * 2 - 9 if int(d) * 2 > 9 else int(d) * 2) if i % 2 else int(d)
                    for i, d in enumerate(reversed(digits)))
        if total % 10 == 0:
            return digits
    raise AssertionError


def card_text(prefix: str, rng: random.Random, lang: str) -> str:
    if prefix in ("34", "37"):
        digits = luhn_complete(prefix, 15, rng)
        groups = [digits[:4], digits[4:10], digits[10:]]
    else:
        digits = luhn_complete(prefix, 16, rng)
        groups = [digits[i : i + 4] for i in range(0, 16, 4)]
    text = rng.choice([" ".join(groups), "-".join(groups), digits])
    return text.translate(FA_DIGITS) if lang == "fa" and rng.random() < 0.4 else text


def bban(pattern: str, rng: random.Random) -> str:
    out, number = [], ""
    for ch in pattern:
        if ch.isdigit():
            number += ch
            continue
        pool = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}[ch]
        out.append("".join(rng.choice(pool) for _ in range(int(number))))
        number = ""
    return "".join(out)


def iban_text(country: str, rng: random.Random) -> str:
    body = bban(IBAN_COUNTRIES[country], rng)
    numeric = int("".join(str(int(ch, 36)) for ch in body + country + "00"))
    compact = f"{country}{98 - numeric % 97:02d}{body}"
    return compact if rng.random() < 0.4 else " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def main() -> None:
    rng = random.Random(20261123)
    records: list[dict] = []

    def add(lang: str, template: str, kind: str, value: str) -> None:
        records.append({"id": f"{kind}-{lang}-{len(records)}", "lang": lang, "text": template.format(v=value),
                        "spans": [{"type": kind, "value": value}], "hard_negative": False})

    for lang, values in EMAILS.items():
        for value in values:
            for template in rng.sample(EMAIL_TEMPLATES[lang], 3):
                add(lang, template, "email", value)
    for lang, template, value in CJK_EMAILS + OBFUSCATED:
        add(lang, template, "email", value)
    for lang, values in PHONES.items():
        for value in values:
            for template in rng.sample(PHONE_TEMPLATES[lang], 3):
                add(lang, template, "phone", value)
    for value in IPS:
        for lang in ("en", "fa", "pl"):
            add(lang, rng.choice(IP_TEMPLATES[lang]), "ip", value)
    for lang in ("en", "fa", "pl"):
        for prefix in CARD_PREFIXES:
            add(lang, rng.choice(CARD_TEMPLATES[lang]), "card", card_text(prefix, rng, lang))
        for country in IBAN_COUNTRIES:
            add(lang, rng.choice(IBAN_TEMPLATES[lang]), "iban", iban_text(country, rng))
    for lang, text, kind, value in EXTRA_POSITIVES:
        records.append({"id": f"{kind}-{lang}-{len(records)}", "lang": lang, "text": text,
                        "spans": [{"type": kind, "value": value}], "hard_negative": False})
    # Several kinds in one text, next to hard negatives.
    for i in range(20):
        lang = ("en", "fa", "pl")[i % 3]
        email, phone = rng.choice(EMAILS[lang]), rng.choice(PHONES[lang])
        card = card_text(rng.choice(CARD_PREFIXES), rng, lang)
        negative = rng.choice(HARD_NEGATIVES[lang])
        text = f"{negative}\n{rng.choice(EMAIL_TEMPLATES[lang]).format(v=email)}\n" \
               f"{rng.choice(PHONE_TEMPLATES[lang]).format(v=phone)}\n{rng.choice(CARD_TEMPLATES[lang]).format(v=card)}"
        records.append({"id": f"mixed-{lang}-{i}", "lang": lang, "text": text, "hard_negative": False,
                        "spans": [{"type": "email", "value": email}, {"type": "phone", "value": phone},
                                  {"type": "card", "value": card}]})
    for lang, texts in HARD_NEGATIVES.items():
        for n, text in enumerate(texts):
            records.append({"id": f"negative-{lang}-{n}", "lang": lang, "text": text, "spans": [], "hard_negative": True})
    with open(OUT, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{OUT}: {len(records)} records")


if __name__ == "__main__":
    main()
