"""Phone numbers drawn from the numbering plans (tests/dataprep/pii_set/phones.py), written as
`phonenumbers` formats them and as people group them in Poland, Iran, the US and the UK, in sentences of
the document's language; and generated look-alikes (PESEL, NIP, counts, amounts, dates) left alone."""

import importlib.util
from collections import Counter
from pathlib import Path

import pytest

from dataprep.steps.pii import PIIConfig, PIIReplacer

SPEC = importlib.util.spec_from_file_location("pii_phones", Path(__file__).parent / "pii_set" / "phones.py")
phones = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(phones)


@pytest.fixture(scope="module")
def replacer():
    return PIIReplacer(PIIConfig())


def test_generated_cases_cover_each_region_grouping_and_script():
    cases = phones.cases()
    assert Counter(c["region"] for c in cases).keys() == {"PL", "IR", "US", "GB"}
    assert any("۰۹" in c["value"] for c in cases) and any("٠٩" in c["value"] for c in cases)
    assert any(c["value"].startswith("+98 9") for c in cases)
    assert {"601 234 567", "(12) 345 67 89"} <= {phones.shape(c["value"]) for c in cases if c["region"] == "PL"}
    assert sum(not c["worded"] for c in cases) > len(cases) / 3  # many without any phone word nearby


@pytest.mark.parametrize("seed", [18, 1805])
def test_every_generated_phone_is_found(replacer, seed):
    missed = [c for c in phones.cases(seed=seed) if ("phone", c["value"]) not in replacer.find(c["text"], c["lang"])]
    assert missed == [], [(c["region"], c["text"]) for c in missed[:10]]


def test_generated_look_alikes_are_left_alone(replacer):
    scrubbed = [(c["text"], replacer.find(c["text"], c["lang"])) for c in phones.negatives(count=60)]
    assert [s for s in scrubbed if s[1]] == []


@pytest.mark.parametrize(
    "text, lang",
    [("Phone:+44 20 7946 0958", "en"), ("تلفن:۰۹۱۲ ۳۴۵ ۶۷۸۹", "fa"), ("با ۰۹۱۲۳۴۵۶۷۸۹تماس بگیرید", "fa"),
     ("Sklep: (012) 345 67 89", "pl"), ("Call 201-925-8668 now", "en")],
)
def test_shapes_the_scrubber_used_to_miss(replacer, text, lang):
    assert [kind for kind, _ in replacer.find(text, lang)] == ["phone"]


@pytest.mark.parametrize("text", ["id:601234567", "key:0912 345 6789", "at 10:30 601 or later", "ISBN 0-306-40615-2"])
def test_a_glued_label_needs_a_phone_word(replacer, text):
    assert replacer.find(text, "pl") == []
