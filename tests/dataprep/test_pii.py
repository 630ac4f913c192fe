import pytest

from dataprep.config import PIIConfig
from dataprep.steps.pii import PIIScrubber
from tokenmill.documents import Document


def scrub(text, **config):
    return PIIScrubber(PIIConfig(**config)).scrub(text)


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
    "text, expected",
    [
        ("Call +48 22 123 45 67 now", "Call <PHONE> now"),
        ("Call +1 (555) 123-4567.", "Call <PHONE>."),
        ("tel. +98 21 1234 5678", "tel. <PHONE>"),
        ("+48 (22) 123 45 67", "<PHONE>"),
        ("0048 22 123 45 67", "<PHONE>"),
        ("E.164: +14155552671", "E.164: <PHONE>"),
        ("phone (555) 123-4567", "phone <PHONE>"),
        ("phone 555-123-4567 or 555.123.4567", "phone <PHONE> or <PHONE>"),
        ("tel. 22 123 45 67, kom. 601 234 567", "tel. <PHONE>, kom. <PHONE>"),
        ("شماره ۰۹۱۲ ۳۴۵ ۶۷۸۹ را بگیرید", "شماره <PHONE> را بگیرید"),
        ("تلفن: ۰۲۱-۱۲۳۴-۵۶۷۸", "تلفن: <PHONE>"),
        ("رقم ٠٩١٢ ٣٤٥ ٦٧٨٩", "رقم <PHONE>"),
        ("0912 345 6789", "<PHONE>"),
        ("020 7946 0958", "<PHONE>"),
        ("01 23 45 67 89", "<PHONE>"),
    ],
)
def test_phone_numbers_are_scrubbed(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("server 192.168.1.10 answers", "server <IP_ADDRESS> answers"),
        ("nameserver 8.8.8.8.", "nameserver <IP_ADDRESS>."),
        ("listening on 0.0.0.0:22", "listening on <IP_ADDRESS>:22"),
        ("IPv6 2001:db8::ff00:42:8329 here", "IPv6 <IP_ADDRESS> here"),
        ("loopback ::1, link fe80::1", "loopback <IP_ADDRESS>, link <IP_ADDRESS>"),
        ("mapped ::ffff:192.0.2.128", "mapped <IP_ADDRESS>"),
        ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334", "full <IP_ADDRESS>"),
    ],
)
def test_ip_addresses_are_scrubbed(text, expected):
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
        "see Section 14.3.4.1, “Auditing”",
        "mailing list @lists.debian.org",
        "chapter 10, page 200",
    ],
)
def test_other_numbers_and_text_are_left_alone(text):
    assert scrub(text) == text


def test_kinds_can_be_turned_off_and_placeholders_chosen():
    text = "a@b.org, +48 22 123 45 67, 10.0.0.1"
    assert scrub(text, email=False) == "a@b.org, <PHONE>, <IP_ADDRESS>"
    assert scrub(text, phone=False, ip=False) == "<EMAIL>, +48 22 123 45 67, 10.0.0.1"
    assert scrub(text, email_placeholder="[e]", phone_placeholder="[p]", ip_placeholder="[ip]") == "[e], [p], [ip]"


def test_step_counts_replacements_by_kind():
    step = PIIScrubber(PIIConfig())
    docs = [Document("1", "x@y.com and z@y.com from 10.0.0.1", {"url": "u"}), Document("2", "nothing here")]
    out = list(step.run(docs))
    assert [d.text for d in out] == ["<EMAIL> and <EMAIL> from <IP_ADDRESS>", "nothing here"]
    assert out[0].meta == {"url": "u"}
    assert step.replaced == {"email": 2, "ip": 1}
    assert step.stats() == {"documents_in": 2, "documents_out": 2, "removed": {}, "changed": 1}
