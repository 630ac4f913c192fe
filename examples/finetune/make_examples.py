"""Build the example fine-tuning data deterministically: `python examples/finetune/make_examples.py`.

The sections below are short handbook-like passages on system administration, written by the
tokenmill team in the style of the Debian Administrator's Handbook that the demo crawls (not copied
from it), in English, Persian and Polish. From them:

  sft.jsonl          a question about a section answered by its text; a summary request answered by its
                     first sentence; one multi-turn chat (`messages`) per language
  preferences.jsonl  a question with the section's text as `chosen` and, as `rejected`, another
                     section's text (off-topic), a refusal, or an answer in another language; and one
                     `ranking` per section: full answer, its first sentence, off-topic

The answers are right by construction and the rejected ones wrong by construction: this is data for
plumbing (the pipeline runs end to end and the metrics move), not for a model of any quality.
Same code, same output, byte for byte.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20240601

# language -> [(section title, [sentences])], the same twelve sections in each language
SECTIONS: dict[str, list[tuple[str, list[str]]]] = {
    "en": [
        ("Installing packages", ["The package manager resolves dependencies before it installs anything.",
                                 "Run apt update first so that it knows the newest versions."]),
        ("Backups", ["A backup is only useful if you have tested that it can be restored.",
                     "Keep at least one copy in another building."]),
        ("The firewall", ["The firewall drops every packet that matches none of its rules.",
                          "Write the rules down and load them at boot."]),
        ("Log files", ["Log files grow quickly and must be rotated before they fill the disk.",
                       "The logrotate tool compresses old logs and deletes the oldest."]),
        ("User accounts", ["Each person gets their own account and never shares a password.",
                           "Remove an account on the day its owner leaves."]),
        ("Configuration files", ["Most configuration files live in the etc directory as plain text.",
                                 "Keep a copy before you edit one."]),
        ("Security updates", ["Security updates should be installed as soon as they are published.",
                              "Unattended upgrades can install them every night."]),
        ("Processes", ["The kernel gives each running process a fair share of the processor.",
                       "The top command shows which process uses the most."]),
        ("Virtual machines", ["A virtual machine behaves like a real computer but runs as a program.",
                              "Several of them can share one physical server."]),
        ("Network problems", ["When the network fails, first check that the cable is plugged in.",
                              "Then ping the gateway and a name server."]),
        ("The mail server", ["The mail server accepts messages for the local domain.",
                             "It forwards every other message to a relay."]),
        ("Documentation", ["Documentation is written for the people who will maintain the system later.",
                           "Write it while you still remember why."]),
    ],
    "fa": [
        ("نصب بسته‌ها", ["مدیر بسته پیش از نصب هر چیزی وابستگی‌ها را حل می‌کند.",
                         "ابتدا apt update را اجرا کنید تا تازه‌ترین نسخه‌ها را بشناسد."]),
        ("پشتیبان‌گیری", ["نسخهٔ پشتیبان تنها وقتی مفید است که بازگردانی آن را آزموده باشید.",
                          "دست‌کم یک نسخه را در ساختمانی دیگر نگه دارید."]),
        ("دیوار آتش", ["دیوار آتش هر بسته‌ای را که با هیچ قانونی جور نباشد رد می‌کند.",
                       "قانون‌ها را بنویسید و هنگام راه‌اندازی بارگذاری کنید."]),
        ("پرونده‌های گزارش", ["پرونده‌های گزارش زود بزرگ می‌شوند و باید پیش از پر شدن دیسک چرخانده شوند.",
                              "ابزار logrotate گزارش‌های کهنه را فشرده و قدیمی‌ترین‌ها را پاک می‌کند."]),
        ("حساب‌های کاربری", ["هر کس حساب خودش را دارد و گذرواژه‌اش را با کسی شریک نمی‌شود.",
                             "حساب هر کس را همان روزی که می‌رود حذف کنید."]),
        ("پرونده‌های پیکربندی", ["بیشتر پرونده‌های پیکربندی در شاخهٔ etc و به صورت متن ساده هستند.",
                                 "پیش از ویرایش از هر کدام یک نسخه نگه دارید."]),
        ("به‌روزرسانی‌های امنیتی", ["به‌روزرسانی‌های امنیتی را باید به محض انتشار نصب کرد.",
                                    "ارتقای خودکار می‌تواند هر شب آن‌ها را نصب کند."]),
        ("فرایندها", ["هستهٔ سیستم‌عامل به هر فرایند در حال اجرا سهم منصفانه‌ای از پردازنده می‌دهد.",
                      "فرمان top نشان می‌دهد کدام فرایند بیشترین مصرف را دارد."]),
        ("ماشین‌های مجازی", ["ماشین مجازی مانند رایانه‌ای واقعی رفتار می‌کند اما به صورت یک برنامه اجرا می‌شود.",
                             "چند ماشین مجازی می‌توانند یک کارگزار فیزیکی را شریک شوند."]),
        ("مشکلات شبکه", ["وقتی شبکه از کار می‌افتد، ابتدا ببینید کابل وصل است یا نه.",
                         "سپس دروازه و یک کارگزار نام را ping کنید."]),
        ("کارگزار رایانامه", ["کارگزار رایانامه پیام‌های دامنهٔ محلی را می‌پذیرد.",
                              "هر پیام دیگری را به یک رله می‌فرستد."]),
        ("مستندات", ["مستندات برای کسانی نوشته می‌شود که بعدها سیستم را نگهداری می‌کنند.",
                     "آن را وقتی بنویسید که هنوز دلیل کارها را به یاد دارید."]),
    ],
    "pl": [
        ("Instalowanie pakietów", ["Menedżer pakietów rozwiązuje zależności, zanim cokolwiek zainstaluje.",
                                   "Najpierw uruchom apt update, aby poznał najnowsze wersje."]),
        ("Kopie zapasowe", ["Kopia zapasowa jest przydatna tylko wtedy, gdy sprawdzono jej odtworzenie.",
                            "Trzymaj przynajmniej jedną kopię w innym budynku."]),
        ("Zapora sieciowa", ["Zapora sieciowa odrzuca każdy pakiet, który nie pasuje do żadnej reguły.",
                             "Zapisz reguły i wczytuj je przy starcie systemu."]),
        ("Pliki dziennika", ["Pliki dziennika szybko rosną i trzeba je rotować, zanim zapełnią dysk.",
                             "Narzędzie logrotate kompresuje stare dzienniki i usuwa najstarsze."]),
        ("Konta użytkowników", ["Każda osoba ma własne konto i nikomu nie zdradza hasła.",
                                "Usuń konto w dniu, w którym jego właściciel odchodzi."]),
        ("Pliki konfiguracyjne", ["Większość plików konfiguracyjnych leży w katalogu etc jako zwykły tekst.",
                                  "Zrób kopię, zanim któryś zmienisz."]),
        ("Aktualizacje bezpieczeństwa", ["Aktualizacje bezpieczeństwa należy instalować zaraz po publikacji.",
                                         "Automatyczne aktualizacje mogą je instalować co noc."]),
        ("Procesy", ["Jądro daje każdemu działającemu procesowi sprawiedliwą część procesora.",
                     "Polecenie top pokazuje, który proces zużywa najwięcej."]),
        ("Maszyny wirtualne", ["Maszyna wirtualna zachowuje się jak prawdziwy komputer, ale działa jako program.",
                               "Kilka maszyn może dzielić jeden serwer fizyczny."]),
        ("Problemy z siecią", ["Gdy sieć nie działa, najpierw sprawdź, czy kabel jest podłączony.",
                               "Potem wyślij ping do bramy i serwera nazw."]),
        ("Serwer poczty", ["Serwer poczty przyjmuje wiadomości dla domeny lokalnej.",
                           "Każdą inną wiadomość przekazuje dalej do przekaźnika."]),
        ("Dokumentacja", ["Dokumentację pisze się dla ludzi, którzy później będą utrzymywać system.",
                          "Pisz ją, póki pamiętasz, dlaczego coś zrobiono."]),
    ],
}

QUESTION = {"en": "What does the handbook say about {title}?",
            "fa": "راهنما دربارهٔ «{title}» چه می‌گوید؟",
            "pl": "Co podręcznik mówi o temacie „{title}”?"}
SUMMARY = {"en": "Summarise the section “{title}” in one sentence.",
           "fa": "بخش «{title}» را در یک جمله خلاصه کن.",
           "pl": "Streść w jednym zdaniu rozdział „{title}”."}
FOLLOW_UP = {"en": "And what should I do next?", "fa": "و بعد چه کار کنم؟", "pl": "A co potem?"}
SYSTEM = {"en": "You answer questions about system administration briefly.",
          "fa": "تو به پرسش‌های مدیریت سیستم کوتاه پاسخ می‌دهی.",
          "pl": "Odpowiadasz krótko na pytania o administrację systemami."}
REFUSAL = {"en": "I don't know.", "fa": "نمی‌دانم.", "pl": "Nie wiem."}
OTHER_LANGUAGE = {"en": "fa", "fa": "pl", "pl": "en"}  # a rejected answer in the wrong language


def sft_rows() -> list[dict]:
    rows = []
    for lang, sections in SECTIONS.items():
        for title, sentences in sections:
            rows.append({"prompt": QUESTION[lang].format(title=title), "response": " ".join(sentences), "lang": lang})
            rows.append({"prompt": SUMMARY[lang].format(title=title), "response": sentences[0], "lang": lang})
        title, sentences = sections[0]
        rows.append({"messages": [
            {"role": "system", "content": SYSTEM[lang]},
            {"role": "user", "content": QUESTION[lang].format(title=title)},
            {"role": "assistant", "content": sentences[0]},
            {"role": "user", "content": FOLLOW_UP[lang]},
            {"role": "assistant", "content": sentences[1]}], "lang": lang})
    return rows


def preference_rows(rng: random.Random) -> list[dict]:
    rows = []
    for lang, sections in SECTIONS.items():
        for i, (title, sentences) in enumerate(sections):
            answer = " ".join(sentences)
            other = " ".join(sections[(i + 1 + rng.randrange(len(sections) - 1)) % len(sections)][1])
            wrong_language = " ".join(SECTIONS[OTHER_LANGUAGE[lang]][i][1])
            rejected = [other, REFUSAL[lang], wrong_language][i % 3]
            kind = ["off-topic", "refusal", "wrong-language"][i % 3]
            question = QUESTION[lang].format(title=title)
            rows.append({"prompt": question, "chosen": answer, "rejected": rejected, "lang": lang, "rejected_kind": kind})
            rows.append({"prompt": SUMMARY[lang].format(title=title), "ranking": [sentences[0], REFUSAL[lang], other],
                         "lang": lang})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


def main(out: Path = HERE) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "sft.jsonl", sft_rows())
    write_jsonl(out / "preferences.jsonl", preference_rows(random.Random(SEED)))


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
