"""The report card: one self-contained HTML page per run from the stages' outputs, plots embedded."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

CRAWL = {"stage": "crawl", "pages_fetched": 13, "documents_in": 13, "documents_out": 13, "bytes_in": 17075,
         "bytes_out": 11903, "removed": {}}
CORPUS = {"stage": "prepare", "documents_in": 13, "documents_out": 11, "bytes_out": 10973,
          "steps": ["normalize", "language", "exact_dedup", "pii"],
          "per_step": {"normalize": {"documents_in": 13, "documents_out": 13, "removed": {}, "changed": 2},
                       "language": {"documents_in": 13, "documents_out": 12, "removed": {"language": 1}},
                       "exact_dedup": {"documents_in": 12, "documents_out": 11, "removed": {"exact_dedup": 1}},
                       "pii": {"documents_in": 11, "documents_out": 11, "removed": {}, "changed": 3}},
          "removed": {"exact_dedup": 1, "language": 1},
          "dedup_clusters": {"exact_dedup": {"clusters": 1, "sizes": {"2": 1}}, "near_dedup": {"clusters": 0, "sizes": {}}},
          "pii_replaced": {"email": 3, "phone": 2}, "languages": {"en": 5, "fa": 3, "pl": 3}}
TOKENS = {"stage": "tokenize", "documents_in": 11, "documents_out": 11, "vocab_size": 400, "bytes_per_token": 1.92,
          "fertility": {"all": 3.9, "en": 3.46, "fa": 3.74, "pl": 4.73},
          "splits": {"train": {"documents": 10, "tokens": 5221}, "val": {"documents": 1, "tokens": 490}}}
TRAIN = {"stage": "train", "steps": 8, "tokens_seen": 4096, "parameters": 855168, "val_loss": 5.19}
METRICS = {"val_loss": 5.19, "perplexity": 179.2, "bits_per_byte": 4.68,  # training/evaluate.py's keys
           **{f"{figure}/lang={lang}": value for lang, figures in
              {"en": (4.1, 120.5, 4.79), "fa": (5.0, 230.25, 5.44), "pl": (4.9, 210.75, 5.35)}.items()
              for figure, value in zip(("bits_per_byte", "perplexity", "val_loss"), figures)},
           "bits_per_byte/source=tiny": 4.68, "perplexity/source=tiny": 179.2, "val_loss/source=tiny": 5.19,
           "unigram_val_loss": 4.86, "tokens": 491, "bytes": 775, "documents": 3}
LANGUAGES_CSV = "language,identified,kept\nen,5,4\nfa,3,3\nund,2,0\npl,3,3\nzxx,1,0\n"  # dataprep/report.py
SAMPLES = [{"prompt": "تاریخ این شهر", "samples": ["شهر <script>alert(1)</script> قدیمی"]}]


@pytest.fixture
def run_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory holding one run's outputs at the default paths, in the stages' formats."""
    for directory, stats in (("data/crawl", CRAWL), ("data/corpus", CORPUS), ("data/tokens", TOKENS),
                             ("models/gpt", TRAIN)):
        (tmp_path / directory).mkdir(parents=True)
        (tmp_path / directory / "stats.json").write_text(json.dumps(stats), encoding="utf-8")
    history = tmp_path / "models/gpt/history"
    history.mkdir()
    (history / "train.csv").write_text("step,loss,lr,tokens_per_s\n1,6.0,0.001,600\n2,5.7,0.002,500\n")
    (history / "val.csv").write_text("step,loss\n2,5.69\n")
    (tmp_path / "data/corpus/plots").mkdir()
    (tmp_path / "data/corpus/plots/languages.csv").write_text(LANGUAGES_CSV)
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    (tmp_path / "samples.json").write_text(json.dumps(SAMPLES, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "params.yaml").write_text("tracking:\n  enabled: false\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_report_card_has_every_section_and_its_plots(run_outputs: Path):
    from pipeline.params import load_params
    from pipeline.stages import report

    result = report(load_params())
    page = (run_outputs / "report.html").read_text(encoding="utf-8")
    assert result["report"] == "report.html"
    for heading in ("Data funnel", "Filters", "Dedup, PII and languages", "Tokenizer", "Training", "Evaluation",
                    "Samples"):
        assert f"<h2>{heading}</h2>" in page, heading
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    titles = [alt for alt, _ in images]
    assert titles == ["Documents after each stage", "Documents removed per reason",
                      "Tokenizer fertility per language (lower is better)", "Loss curves",
                      "Bits per byte per language"]
    assert all(base64.b64decode(data).startswith(b"\x89PNG") for _, data in images)
    assert "prepare: after exact_dedup" in page and "email" in page
    assert "<script>" not in page and "&lt;script&gt;" in page  # samples are text, never markup
    assert '<p dir="auto"><b>تاریخ این شهر</b>' in page
    assert "http" not in page.replace("http://127.0.0.1", "")  # self-contained: nothing fetched from anywhere


def test_report_card_is_deterministic_and_only_replaces_itself(run_outputs: Path):
    from pipeline.params import load_params
    from pipeline.stages import report
    from tokenmill.errors import UserError

    report(load_params())
    first = (run_outputs / "report.html").read_bytes()
    report(load_params())
    assert (run_outputs / "report.html").read_bytes() == first
    (run_outputs / "notes.html").write_text("<p>mine</p>")
    with pytest.raises(UserError, match="notes.html"):
        report(load_params(), Path("notes.html"))


def test_ad_hoc_run_report_reads_only_that_run(run_outputs: Path):
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "report", "--set", "train.max_steps=3"],
                          cwd=run_outputs, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    page = (run_outputs / "runs/train.max_steps=3/report.html").read_text(encoding="utf-8")
    assert "ad-hoc run" in page and "Loss curves" not in page and "<h2>Evaluation</h2>" not in page
    assert "Data funnel" in page  # the upstream stages are the versioned ones it reads


def test_report_card_renders_in_headless_chromium(run_outputs: Path):
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium installed (apt-get install chromium)")
    from pipeline.params import load_params
    from pipeline.stages import report

    report(load_params())
    shot = run_outputs / "card.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1000,2400", (run_outputs / "report.html").as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 50_000  # a rendered page with its plots, not a blank one


def test_report_card_has_a_row_per_harness_task(run_outputs: Path):
    from pipeline.params import load_params
    from pipeline.stages import report

    tasks = {"task/tokenmill_next_sentence_pl/acc": 0.5, "task/tokenmill_next_sentence_pl/acc_stderr": 0.1,
             "task/tokenmill_next_sentence_pl/acc_norm": 0.625, "task/tokenmill_next_sentence_pl/sample_len": 8.0,
             "task/tokenmill_last_word_fa/acc": 0.25, "task/tokenmill_last_word_fa/perplexity": 41.5}
    (run_outputs / "metrics.json").write_text(json.dumps({**METRICS, **tasks}))
    (run_outputs / "harness.json").write_text(json.dumps({"lm_eval": "0.4.13", "limit": 8, "eval_set": "abc123"}))
    report(load_params())
    page = (run_outputs / "report.html").read_text(encoding="utf-8")
    section = page[page.index("<h2>Harness tasks</h2>"):]
    assert "lm-evaluation-harness 0.4.13, limit 8, local tasks from evaluation set abc123" in section
    assert "tokenmill_next_sentence_pl" in section and "0.5 ± 0.1" in section and "41.5" in section
    assert "task/" not in page[:page.index("<h2>Harness tasks</h2>")]  # not repeated in the Evaluation table


def _section(page: str, heading: str) -> str:
    start = page.index(heading)
    end = page.find("<h2>", start + len(heading))
    return page[start:end if end >= 0 else len(page)]


def test_languages_kept_counts_what_prepare_kept(run_outputs: Path):
    """Not what the language step identified before filtering (und, zxx, the count before filtering)."""
    from pipeline.params import load_params
    from pipeline.stages import report

    report(load_params())
    page = (run_outputs / "report.html").read_text(encoding="utf-8")
    kept = _section(page, "<h3>Languages kept</h3>")
    rows = re.findall(r"<tr><td>(\w+)</td><td class=\"num\">(\d+)</td>", kept)
    assert rows == [("en", "4"), ("fa", "3"), ("pl", "3")]  # sum 10 = documents kept, most first
    assert "Identified before filtering, none kept: und (2), zxx (1)." in kept


def test_languages_without_the_plots_say_they_are_identified_ones(run_outputs: Path):
    from pipeline.params import load_params
    from pipeline.stages import report

    (run_outputs / "data/corpus/plots/languages.csv").unlink()
    report(load_params())
    page = (run_outputs / "report.html").read_text(encoding="utf-8")
    assert "Languages kept" not in page and "<h3>Languages identified (before filtering)</h3>" in page


def test_evaluation_is_a_table_per_language_with_the_figures_side_by_side(run_outputs: Path):
    from pipeline.params import load_params
    from pipeline.stages import report

    report(load_params())
    section = _section((run_outputs / "report.html").read_text(encoding="utf-8"), "<h2>Evaluation</h2>")
    per_language = section[section.index("<h3>Per language</h3>"):section.index("<h3>Per source</h3>")]
    assert ("<tr><th>language</th><th>bits per byte</th><th>perplexity</th><th>loss (nats/token)</th></tr>"
            in per_language)
    cells = re.findall(r"<tr><td>(\w+)</td>" + r'<td class="num">([\d.,]+)</td>' * 3, per_language)
    assert cells == [("en", "4.1", "120.5", "4.79"), ("fa", "5", "230.2", "5.44"), ("pl", "4.9", "210.8", "5.35"),
                     ("all", "4.68", "179.2", "5.19")]
    assert "<h3>Per source</h3>" in section and "<td>tiny</td>" in section
    assert "Scored: 3 documents, 491 tokens, 775 bytes. Unigram baseline loss: 4.86 nats/token." in section
    assert "/lang=" not in section and "Other figures" not in section  # no raw dump of the keys
