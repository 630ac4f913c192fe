from dataprep.config import NormalizeConfig
from dataprep.steps.normalize import Normalize, normalize_text
from tokenmill.documents import Document

DEFAULT = NormalizeConfig()


def test_zwnj_and_zwj_are_kept_other_invisibles_dropped():
    text = "می\u200cخواهم\u200d \u00adsoft\ufeff hy\u200bphen \u200fمتن\x07"
    assert normalize_text(text, DEFAULT) == "می\u200cخواهم\u200d soft hyphen متن"


def test_arabic_yeh_and_kaf_become_persian_in_persian_text():
    # Persian typed on an Arabic keyboard: ي (U+064A) and ك (U+0643); گ marks the text as Persian.
    assert normalize_text("كتاب يك گربه", DEFAULT) == "کتاب یک گربه"
    assert normalize_text("علي", DEFAULT, declared_lang="fa-IR") == "علی"


def test_arabic_text_keeps_arabic_letters():
    assert normalize_text("كتاب يكتب", DEFAULT) == "كتاب يكتب"
    assert normalize_text("كتاب گربه", NormalizeConfig(persian_letters=False)) == "كتاب گربه"


def test_unicode_nfc():
    assert normalize_text("Cafe\u0301 zażo\u0301łć", DEFAULT) == "Café zażółć"
    assert normalize_text("Cafe\u0301", NormalizeConfig(form="none")) == "Cafe\u0301"


def test_whitespace_and_line_endings():
    text = "  Title\r\n\r\n\r\n\r\nfirst  line\u00a0\u00a0here   \r\n    indented\tcode  \rlast"
    assert normalize_text(text, DEFAULT) == "Title\n\nfirst line here\n    indented\tcode\nlast"


def test_digit_folding_is_off_by_default():
    assert normalize_text("سال ۱۴۰۲ و ٢٠٢٣", DEFAULT) == "سال ۱۴۰۲ و ٢٠٢٣"
    assert normalize_text("سال ۱۴۰۲ و ٢٠٢٣", NormalizeConfig(fold_digits=True)) == "سال 1402 و 2023"


def test_step_rewrites_text_keeps_meta_and_removes_empty_documents():
    removed = []
    step = Normalize(DEFAULT, on_remove=lambda doc, reason: removed.append((doc.id, reason)))
    docs = [Document("a", "hello\r\nworld  ", {"url": "u"}), Document("b", " \u200b\ufeff \n")]
    out = list(step.run(docs))
    assert [(d.id, d.text, d.meta) for d in out] == [("a", "hello\nworld", {"url": "u"})]
    assert removed == [("b", "normalize:empty")]
    assert step.stats() == {"documents_in": 2, "documents_out": 1, "removed": {"normalize:empty": 1}, "changed": 1}


def test_mojibake_is_repaired_in_latin_and_persian_text():
    config = NormalizeConfig()
    assert normalize_text("The cafÃ© serves crÃ¨me brÃ»lÃ©e â€” daily.", config) == "The café serves crème brûlée — daily."
    assert normalize_text("Ø³Ù„Ø§Ù… Ø¯Ù†ÛŒØ§", config) == "سلام دنیا"
    assert normalize_text("Zażółć gęślą jaźń", config) == "Zażółć gęślą jaźń"  # correct text is left alone
    assert normalize_text("“quoted” ﬁne", config) == "“quoted” ﬁne"  # quotes and ligatures as written
    assert normalize_text("cafÃ©", NormalizeConfig(fix_mojibake=False)) == "cafÃ©"


def test_control_characters_are_dropped():
    assert normalize_text("a\x00b\x07c\x1bd\u200ee", NormalizeConfig()) == "abcde"


def test_normalising_is_idempotent():
    # tokenmill select does not normalise a stored text again (dataprep/select.py): it must be a fixed point
    from pathlib import Path

    from dataprep_samples import ENGLISH, ENGLISH_OTHER, GERMAN, PERSIAN, POLISH

    texts = [ENGLISH, ENGLISH_OTHER, GERMAN, PERSIAN, POLISH, "The cafÃ© â€” Ø³Ù„Ø§Ù…\r\n\u200b x\u200c\x07 ك ي",
             "a\x00b\u200ee  \n\n\n  c", "ﬁne “quoted” ١٢٣ ۴۵۶ 789"]
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "tinyshakespeare" / "input.txt"
    if shared.is_file():
        texts += shared.read_text(encoding="utf-8")[:200_000].split("\n\n")
    for lang in (None, "fa", "en"):
        for text in texts:
            once = normalize_text(text, DEFAULT, lang)
            assert normalize_text(once, DEFAULT, lang) == once, (lang, text[:80])
