"""Labelled documents for the quality classifier's tests: prose (the dataprep samples' sentences, shuffled
into new documents) against web boilerplate (menus, cookie banners, share buttons, listings)."""

import random
import re

from dataprep_samples import ENGLISH, ENGLISH_OTHER, PERSIAN, POLISH

SENTENCES = {
    lang: [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    for lang, text in (("en", ENGLISH + " " + ENGLISH_OTHER), ("fa", PERSIAN), ("pl", POLISH))
}
BOILERPLATE = {
    "en": ["Home", "About us", "Contact", "Log in", "Sign up", "Share on Facebook", "Tweet", "Accept cookies",
           "Privacy policy", "Terms of use", "Read more", "Next page", "Subscribe to our newsletter", "Buy now",
           "Free shipping on orders over $50", "Copyright 2024 All rights reserved", "Menu", "Search"],
    "fa": ["خانه", "درباره ما", "تماس با ما", "ورود", "ثبت نام", "اشتراک گذاری", "ادامه مطلب", "صفحه بعد",
           "حریم خصوصی", "قوانین", "خرید کنید", "جستجو", "منو", "کلیه حقوق محفوظ است"],
    "pl": ["Strona główna", "O nas", "Kontakt", "Zaloguj się", "Zarejestruj", "Udostępnij", "Czytaj więcej",
           "Następna strona", "Polityka prywatności", "Regulamin", "Kup teraz", "Szukaj", "Menu",
           "Wszelkie prawa zastrzeżone", "Akceptuję pliki cookies"],
}


def prose(lang: str, rng: random.Random) -> str:
    return " ".join(rng.sample(SENTENCES[lang], k=min(4, len(SENTENCES[lang]))))


def boilerplate(lang: str, rng: random.Random) -> str:
    return "\n".join(rng.choice(BOILERPLATE[lang]) for _ in range(rng.randint(8, 20)))


def labelled(per_language: int = 80, seed: int = 0) -> list[dict]:
    """[{id, text, label, lang}] with `per_language` positives and negatives in each of en, fa, pl."""
    rng = random.Random(seed)
    records = []
    for lang in SENTENCES:
        for i in range(per_language):
            records.append({"id": f"{lang}-p{i}", "text": prose(lang, rng), "label": 1, "lang": lang})
            records.append({"id": f"{lang}-n{i}", "text": boilerplate(lang, rng), "label": 0, "lang": lang})
    return records
