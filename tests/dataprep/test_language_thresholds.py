"""FineWeb-2's calibrated Gopher thresholds for Persian and Polish are the defaults; English stays Gopher's."""

from dataprep.config import QualityConfig
from dataprep.steps.gopher_quality import GopherQuality
from tokenmill.documents import Document

LONG_WORDED = " ".join(["w", "w"] + ["zaopatrzenie", "odpowiedni"] * 24)  # mean word length 10.6


def reason(text, lang):
    return GopherQuality(QualityConfig()).reject(Document("d", text, {"lang": lang}))


def test_polish_allows_longer_words_than_english():
    assert reason(LONG_WORDED, "pl") is None  # pol_Latn: max_avg_word_length 11
    assert reason(LONG_WORDED, "en") == "quality:max_mean_word_length"  # Gopher: 10


def test_persian_allows_shorter_words_and_needs_more_of_them_alphabetic():
    short = " ".join(["و", "در", "به", "ازو"] * 15)  # mean word length 2.0
    assert reason(short, "fa") is None  # fas_Arab: min_avg_word_length 2
    assert reason(short, None) == "quality:min_mean_word_length"
    numbers = " ".join(["و", "در", "کتاب", "خانه", "۱۲۳"] * 12)  # 80 % of the words alphabetic
    assert reason(numbers, "fa") == "quality:alpha_words"  # fas_Arab: 0.812
