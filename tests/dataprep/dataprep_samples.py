"""Real-sounding prose in English, Persian and Polish for the dataprep tests (written for them)."""

ENGLISH = (
    "Debian is a free operating system that is developed by a community of volunteers from all over the "
    "world. The project was started in 1993 by Ian Murdock, who wanted a distribution that would be built "
    "openly, in the spirit of Linux and GNU. Every package in the archive is maintained by a person or a "
    "team that takes care of bug reports, security updates and new upstream releases.\n\n"
    "The stable release is tested for a long time before it is published, which is why many companies "
    "and universities choose it for their servers. Administrators value the predictable upgrade path and "
    "the large collection of software that is available with a single command."
)

PERSIAN = (
    "دبیان یک سیستم‌عامل آزاد است که به دست گروهی از داوطلبان در سراسر جهان ساخته می‌شود. این پروژه در "
    "سال ۱۹۹۳ آغاز شد و هدف آن ساختن توزیعی بود که به شکل باز و با همکاری همه توسعه پیدا کند. هر بسته در "
    "مخزن دبیان یک نگهدارنده دارد که گزارش‌های خطا را بررسی می‌کند و به‌روزرسانی‌های امنیتی را منتشر "
    "می‌کند.\n\n"
    "نسخهٔ پایدار پیش از انتشار مدت زیادی آزمایش می‌شود و به همین دلیل بسیاری از شرکت‌ها و دانشگاه‌ها آن را "
    "برای سرورهای خود انتخاب می‌کنند. مدیران سیستم از اینکه ارتقا قابل پیش‌بینی است و نرم‌افزارهای فراوانی "
    "با یک فرمان در دسترس است راضی هستند."
)

POLISH = (
    "Debian to wolny system operacyjny, który jest rozwijany przez społeczność ochotników z całego świata. "
    "Projekt został założony w 1993 roku przez Iana Murdocka, który chciał stworzyć dystrybucję budowaną "
    "w sposób otwarty, w duchu Linuksa i GNU. Każdy pakiet w archiwum ma opiekuna, który odpowiada na "
    "zgłoszenia błędów i przygotowuje poprawki bezpieczeństwa.\n\n"
    "Wydanie stabilne jest długo testowane przed publikacją, dlatego wiele firm oraz uczelni wybiera je "
    "dla swoich serwerów. Administratorzy cenią przewidywalne aktualizacje oraz ogromny wybór "
    "oprogramowania, które można zainstalować jednym poleceniem."
)

GERMAN = (
    "Debian ist ein freies Betriebssystem, das von einer weltweiten Gemeinschaft von Freiwilligen "
    "entwickelt wird. Das Projekt wurde 1993 von Ian Murdock gegründet, der eine Distribution schaffen "
    "wollte, die offen und im Geiste von Linux und GNU gebaut wird. Jedes Paket im Archiv hat einen "
    "Betreuer, der sich um Fehlerberichte und Sicherheitsaktualisierungen kümmert."
)

# A different English document on another subject (for near-duplicate tests).
ENGLISH_OTHER = (
    "The river flooded the lower town twice during the spring, and the council decided to build a new "
    "embankment before the next rainy season. Engineers from the regional office surveyed the banks, "
    "measured the depth of the channel and proposed a wall of stone and earth that would protect the "
    "market square. Shopkeepers were worried about the cost, but most of them agreed that losing their "
    "stock every year was worse. Work began in the summer and the first section was finished before the "
    "autumn storms arrived, to the relief of everyone who lived near the water."
)
