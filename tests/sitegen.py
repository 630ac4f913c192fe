"""A small multilingual web site for tests: real-looking prose in English, Persian and Polish,
linked pages, an exact duplicate, a near duplicate and PII to scrub. Deterministic."""

from __future__ import annotations

import random
from pathlib import Path

SENTENCES = {
    "en": [
        "The package manager resolves dependencies before it installs anything on the system.",
        "A good administrator keeps a written record of every change made to the servers.",
        "When the network fails, the first thing to check is whether the cable is plugged in.",
        "Backups are only useful if you have tested that they can actually be restored.",
        "The kernel schedules processes so that each of them gets a fair share of the processor.",
        "Most configuration files live in the etc directory and are plain text that you can edit.",
        "Security updates should be applied as soon as they are published by the distribution.",
        "The mail server accepts messages for the local domain and forwards the rest to a relay.",
        "Users often forget their passwords, so the help desk has a procedure for resetting them.",
        "A virtual machine behaves like a real computer but runs as a program on another host.",
        "Log files grow quickly and must be rotated before they fill the whole disk.",
        "The firewall drops every packet that does not match one of the rules written by the team.",
        "Documentation is written for people who will maintain the system long after you leave.",
        "It is easier to automate a task once you have done it by hand a few times.",
        "The printer on the second floor has been out of paper since the meeting on Monday.",
        "Our office moved to a new building with more light and a much larger kitchen.",
    ],
    "fa": [
        "مدیر سیستم باید پیش از هر تغییری از داده‌ها نسخهٔ پشتیبان تهیه کند.",
        "بسته‌ها در این توزیع با ابزاری ساده نصب و به‌روزرسانی می‌شوند.",
        "شبکهٔ دفتر ما هر روز صبح برای چند دقیقه کند می‌شود و کسی علت آن را نمی‌داند.",
        "کاربران می‌توانند گذرواژهٔ خود را از طریق صفحهٔ تنظیمات تغییر دهند.",
        "هستهٔ سیستم‌عامل منابع را میان برنامه‌های در حال اجرا تقسیم می‌کند.",
        "پرونده‌های پیکربندی معمولاً متنی هستند و با هر ویرایشگری باز می‌شوند.",
        "به‌روزرسانی‌های امنیتی را باید هرچه زودتر روی کارگزارها نصب کرد.",
        "این کتاب برای کسانی نوشته شده است که می‌خواهند سیستم خود را بهتر بشناسند.",
        "گزارش‌های سیستم به سرعت بزرگ می‌شوند و باید به‌طور منظم بایگانی شوند.",
        "دیوار آتش همهٔ بسته‌هایی را که با قوانین تعریف‌شده سازگار نیستند رد می‌کند.",
        "ما در سال ۱۴۰۱ دفتر جدیدی در مرکز شهر اجاره کردیم.",
        "برای یادگیری هر ابزار تازه بهتر است ابتدا مستندات آن را با دقت بخوانید.",
    ],
    "pl": [
        "Administrator systemu powinien regularnie sprawdzać, czy kopie zapasowe działają poprawnie.",
        "Menedżer pakietów rozwiązuje zależności, zanim cokolwiek zainstaluje w systemie.",
        "Pliki konfiguracyjne znajdują się zwykle w katalogu etc i można je edytować ręcznie.",
        "Aktualizacje bezpieczeństwa należy instalować jak najszybciej po ich opublikowaniu.",
        "Jądro systemu przydziela każdemu procesowi sprawiedliwą część czasu procesora.",
        "Użytkownicy często zapominają haseł, więc dział pomocy ma na to gotową procedurę.",
        "Zapora sieciowa odrzuca wszystkie pakiety, które nie pasują do żadnej reguły.",
        "Dokumentacja jest pisana dla ludzi, którzy będą utrzymywać system po twoim odejściu.",
        "Pliki dziennika szybko rosną i trzeba je rotować, zanim zapełnią cały dysk.",
        "Maszyna wirtualna zachowuje się jak prawdziwy komputer, ale działa jako program.",
        "Nasze biuro przeniosło się do nowego budynku z większą kuchnią i lepszym światłem.",
        "Łatwiej jest zautomatyzować zadanie, gdy wykona się je kilka razy ręcznie.",
    ],
}
HTML_LANG = {"en": "en-US", "fa": "fa-IR", "pl": "pl-PL"}
CONTACT = {
    "en": "Write to admin.team@example.org or call +1 (555) 123-4567 if the server at 192.168.10.24 is down.",
    "fa": "در صورت مشکل با پشتیبانی به نشانی support@example.ir یا شمارهٔ ۰۹۱۲ ۳۴۵ ۶۷۸۹ تماس بگیرید.",
    "pl": "W razie problemów napisz na pomoc@example.pl lub zadzwoń pod numer +48 22 123 45 67.",
}


def page_text(lang: str, rng: random.Random, sentences: int = 9, paragraphs: int = 3) -> list[str]:
    """Distinct sentences in a page-specific order: pages share sentences but are no near-duplicates."""
    chosen = rng.sample(SENTENCES[lang], k=sentences)
    size = -(-sentences // paragraphs)
    return [" ".join(chosen[i:i + size]) for i in range(0, sentences, size)]


def render(lang: str, title: str, paragraphs: list[str], links: list[str]) -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    nav = "\n".join(f'<li><a href="{href}">{href}</a></li>' for href in links)
    direction = ' dir="rtl"' if lang == "fa" else ""
    return (f'<!DOCTYPE html>\n<html lang="{HTML_LANG[lang]}"{direction}><head><meta charset="utf-8">'
            f"<title>{title}</title></head><body><nav><ul>{nav}</ul></nav>"
            f"<article><h1>{title}</h1>\n{body}\n</article><footer>Copyright tokenmill tests</footer>"
            "</body></html>\n")


def make_site(root: Path, pages_per_lang: int = 4, seed: int = 0) -> dict[str, list[str]]:
    """Write the site under `root`; return the page paths per language (index pages first)."""
    rng = random.Random(seed)
    pages: dict[str, list[str]] = {}
    for lang in SENTENCES:
        names = [f"/{lang}/index.html"] + [f"/{lang}/page-{i}.html" for i in range(1, pages_per_lang)]
        pages[lang] = names
        for number, name in enumerate(names):
            paragraphs = page_text(lang, rng)
            if number == 1:
                paragraphs.append(CONTACT[lang])
            links = [n for n in names if n != name]
            path = root / name.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(lang, f"{lang} page {number}", paragraphs, links), encoding="utf-8")
    # An untranslated copy of an English page, as translated sites often have: an exact duplicate.
    copy = root / "en" / "copy.html"
    copy.write_text((root / "en" / "page-1.html").read_text(encoding="utf-8"), encoding="utf-8")
    index = root / "en" / "index.html"
    index.write_text(index.read_text(encoding="utf-8").replace("</ul>", '<li><a href="/en/copy.html">copy</a></li></ul>'),
                     encoding="utf-8")
    pages["en"].append("/en/copy.html")
    return pages
