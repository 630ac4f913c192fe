import pytest

from dataprep.config import PIIConfig
from dataprep.steps.pii import PIIScrubber
from tokenmill.documents import Document


def scrub(text, lang=None, **config):
    return PIIScrubber(PIIConfig(**config)).scrub(text, lang)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Write to jan.kowalski@example.pl today.", "Write to <EMAIL> today."),
        ("mail: raphael+debian@hertzog.net.", "mail: <EMAIL>."),
        ("<a href='mailto:Info@Falcot.COM'>", "<a href='mailto:<EMAIL>'>"),
        ("contact: user [at] example [dot] org", "contact: <EMAIL>"),
        ("user(at)example.co.uk", "<EMAIL>"),
        ("ایمیل: علی.رضایی@مثال.ایران لطفا", "ایمیل: <EMAIL> لطفا"),
        ("zażółć@gęślą.pl", "<EMAIL>"),
    ],
)
def test_emails_are_scrubbed(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text, expected, lang",
    [
        ("Call +48 22 123 45 67 now", "Call <PHONE> now", None),
        ("Call +1 (555) 123-4567.", "Call <PHONE>.", None),
        ("tel. +98 21 1234 5678", "tel. <PHONE>", None),
        ("+48 (22) 123 45 67", "<PHONE>", None),
        ("0048 22 123 45 67", "<PHONE>", None),
        ("E.164: +14155552671", "E.164: <PHONE>", None),
        ("phone (555) 123-4567", "phone <PHONE>", None),
        ("phone 555-123-4567 or 555.123.4567", "phone <PHONE> or <PHONE>", None),
        ("tel. 22 123 45 67, kom. 601 234 567", "tel. <PHONE>, kom. <PHONE>", None),
        ("Biuro: 22 123 45 67", "Biuro: <PHONE>", "pl"),
        ("شماره ۰۹۱۲ ۳۴۵ ۶۷۸۹ را بگیرید", "شماره <PHONE> را بگیرید", None),
        ("تلفن: ۰۲۱-۱۲۳۴-۵۶۷۸", "تلفن: <PHONE>", None),
        ("رقم ٠٩١٢ ٣٤٥ ٦٧٨٩", "رقم <PHONE>", None),
        ("0912 345 6789", "<PHONE>", None),
        ("020 7946 0958", "<PHONE>", None),
        ("01 23 45 67 89", "<PHONE>", "fr"),
    ],
)
def test_phone_numbers_are_scrubbed(text, expected, lang):
    assert scrub(text, lang) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("server 192.168.1.10 answers", "server <IP_ADDRESS> answers"),
        ("nameserver 8.8.8.8.", "nameserver <IP_ADDRESS>."),
        ("IPv6 2001:db8::ff00:42:8329 here", "IPv6 <IP_ADDRESS> here"),
        ("link fe80::1", "link <IP_ADDRESS>"),
        ("mapped ::ffff:192.0.2.128", "mapped <IP_ADDRESS>"),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "full <IP_ADDRESS>"),
        ("10.1.2.3 gateway\n172.16.0.9 db", "<IP_ADDRESS> gateway\n<IP_ADDRESS> db"),
    ],
)
def test_every_ip_address_is_scrubbed_when_asked(text, expected):
    assert scrub(text, public_ips_only=False) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("nameserver 8.8.8.8.", "nameserver <IP_ADDRESS>."),
        ("server 192.168.1.10 and 93.184.216.34", "server 192.168.1.10 and <IP_ADDRESS>"),
        ("listening on 0.0.0.0:22 and 127.0.0.1:8080", "listening on 0.0.0.0:22 and 127.0.0.1:8080"),
        ("93.184.216.34 example.org\n151.101.1.69 - - [10/Oct/2024]", "<IP_ADDRESS> example.org\n<IP_ADDRESS> - - [10/Oct/2024]"),
        ("IPv6 2a00:1450:4001:82a::200e here, link fe80::1", "IPv6 <IP_ADDRESS> here, link fe80::1"),
    ],
)
def test_only_public_ip_addresses_by_default(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-01-15 we met",
        "at 2024-01-15T10:30:00Z",
        "logged 2024-01-15 10:30:00",
        "-rw-r--r-- 1 root root 1181 2021-07-27 10:00 file",
        "at 09:00 27.07.22 <<END",
        "15.01.2024 and 01/15/2024",
        "۱۴۰۲/۰۵/۱۲ و ۱۴۰۲-۰۵-۱۲",
        "version 1.2.3",
        "kernel 2.6.32-5-amd64",
        "Debian 11.20220922",
        "python3.11",
        "in 1999, 2000 and 2001",
        "1990-2000",
        "costs $1,234.56",
        "1 234 567 zł",
        "€ 1.234.567,89",
        "12.345.678 people",
        "100 000 000 zł",
        "1,000,000 users",
        "number 123456789",
        "ISBN 978-3-16-148410-0",
        "pages 123-456 and 1000-2000",
        "scores 18 22 13 17",
        "pi is 3.14159",
        "999.168.1.1 and 256.1.1.1",
        "1.2.3.4.5",
        "10:30:00",
        "00:1a:2b:3c:4d:5e",
        "std::vector and a::b",
        "6.7.3.3. Old or Unused Configuration Files",
        "(see 9.2.1.4 – „Creating Encrypted Tunnels“)",
        "ssh (第 9.2.1.4 節「ポート転送」を参照)",
        "ssh (انظر قسم 9.2.1.4, “إنشاء الأنفاق”)",
        "/dev/sda1 2048 4095 2048 1M BIOS boot",
        "'123 456 789.00' and 12 345 678,90 zł",
        "User-Agent: Thunderbird 1.5.0.9 (X11/20061227), zlib 1.2.3.5",
        "the other 10 are cached\n479001600 recursive calls",
        "8 64 512\n9 81 729\n10 100 1000\n",
        "1 1\n11 39916800\n21 5109094217170944",
        "0001-01-01 through 9999-12-31 range, digits '0123456789'",
        "(se Avsnitt 9.2.1.4, ”Skapa krypterade”)",
        "udp6 0 0 ::1:123 :::* 539/ntpd and prefix 2001:0bc8:31a0::/48",
        "gateway 192.168.122.57 and docs 198.51.100.19",
        "see Section 14.3.4.1, “Auditing”",
        "mailing list @lists.debian.org",
        "chapter 10, page 200",
    ],
)
def test_other_numbers_and_text_are_left_alone(text):
    assert scrub(text) == text


def test_kinds_can_be_turned_off_and_placeholders_chosen():
    text = "a@b.org, +48 22 123 45 67, 93.184.216.34"
    assert scrub(text, email=False) == "a@b.org, <PHONE>, <IP_ADDRESS>"
    assert scrub(text, phone=False, ip=False) == "<EMAIL>, +48 22 123 45 67, 93.184.216.34"
    assert scrub(text, email_placeholder="[e]", phone_placeholder="[p]", ip_placeholder="[ip]") == "[e], [p], [ip]"


def test_step_counts_replacements_by_kind():
    step = PIIScrubber(PIIConfig())
    docs = [Document("1", "x@y.com and z@y.com from 93.184.216.34", {"url": "u"}), Document("2", "nothing here")]
    out = list(step.run(docs))
    assert [d.text for d in out] == ["<EMAIL> and <EMAIL> from <IP_ADDRESS>", "nothing here"]
    assert out[0].meta == {"url": "u"}
    assert step.replaced == {"email": 2, "ip": 1}
    assert step.stats() == {"documents_in": 2, "documents_out": 2, "removed": {}, "changed": 1}


def test_cards_and_ibans_are_counted_by_type_and_placeholders_are_typed():
    step = PIIScrubber(PIIConfig())
    doc = Document("1", "Karta 4111 1111 1111 1111, konto PL61 1090 1014 0000 0712 1981 2874, tel. 601 234 567.",
                   {"lang": "pl"})
    (out,) = step.run([doc])
    assert out.text == "Karta <CARD>, konto <IBAN>, tel. <PHONE>."
    assert step.summary() == {"pii_replaced": {"card": 1, "iban": 1, "phone": 1}}


def test_persian_card_with_persian_digits_and_an_iranian_sheba():
    text = "شماره کارت ۶۰۳۷-۹۹۷۵-۹۹۹۹-۹۹۹۰ و شبا IR062960000000100324200001"
    # 6037 9975 9999 9990 is not Luhn-valid: it stays; the Sheba number is a valid IBAN.
    assert scrub(text, "fa") == "شماره کارت ۶۰۳۷-۹۹۷۵-۹۹۹۹-۹۹۹۰ و شبا <IBAN>"
