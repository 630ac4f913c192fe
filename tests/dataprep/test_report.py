"""The data-quality report beside the corpus: HTML with embedded plots, CSV/SVG for DVC, deterministic."""

import base64
import csv
import re
import subprocess
import sys

from test_prepare_pipeline import CORPUS, tree_bytes, write_corpus

from dataprep.config import PrepareConfig
from dataprep.pipeline import run


def read_csv(path):
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_report_shows_every_section_with_embedded_plots(tmp_path):
    stats = run(write_corpus(tmp_path / "docs.jsonl"), tmp_path / "out", PrepareConfig())
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for heading in ("Removals per step", "Removals per reason", "Document lengths", "Languages",
                    "Duplicate clusters", "PII replaced", "Removed examples"):
        assert f"<h2>{heading}</h2>" in page
    images = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', page)
    assert len(images) == 5 and all(base64.b64decode(i).startswith(b"<svg ") for i in images)
    for reason in stats["removed"]:  # an example of every reason, with its id
        assert f"<h3>{reason}</h3>" in page
    assert "duplicate of copy" in page and "language:de" in page
    assert "<td>email</td><td>1</td>" in page and "<td>phone</td><td>1</td>" in page


def test_prepare_draws_its_charts_without_matplotlib(tmp_path):
    # in a fresh interpreter: another test of this session may have imported matplotlib already
    code = ("import sys; from pathlib import Path; from dataprep.config import PrepareConfig; "
            "from dataprep.pipeline import run; run(Path(sys.argv[1]), Path(sys.argv[2]), PrepareConfig()); "
            "print(sorted(m for m in ('matplotlib', 'pandas') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(write_corpus(tmp_path / "docs.jsonl")),
                           str(tmp_path / "out")], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "out" / "plots" / "removals.svg").is_file()


def test_report_plots_are_dvc_plots(tmp_path):
    run(write_corpus(tmp_path / "docs.jsonl"), tmp_path / "out", PrepareConfig())
    plots = tmp_path / "out" / "plots"
    for name in ("removals", "dedup_clusters", "doc_lengths", "languages", "pii"):
        assert (plots / f"{name}.csv").is_file() and (plots / f"{name}.svg").read_bytes().startswith(b"<svg ")
    lengths = read_csv(plots / "doc_lengths.csv")
    assert sum(int(r["before"]) for r in lengths) == len(CORPUS)
    assert sum(int(r["after"]) for r in lengths) == 5
    from dataprep.report import histogram, log_bins, text_lengths  # counted while writing = read back

    after = text_lengths(tmp_path / "out")
    before = after + text_lengths(tmp_path / "out" / "removed")
    edges = log_bins(before)
    bins = list(zip(histogram(before, edges), histogram(after, edges)))
    used = [i for i, (b, _) in enumerate(bins) if b]
    assert [(int(r["before"]), int(r["after"])) for r in lengths] == bins[used[0] : used[-1] + 1]
    languages = {r["language"]: (int(r["identified"]), int(r["kept"])) for r in read_csv(plots / "languages.csv")}
    assert languages["de"] == (1, 0) and languages["fa"] == (1, 1)
    assert {r["type"]: int(r["replacements"]) for r in read_csv(plots / "pii.csv")} == {"email": 1, "phone": 1}


def test_report_is_deterministic(tmp_path):
    source = write_corpus(tmp_path / "docs.jsonl")
    run(source, tmp_path / "a", PrepareConfig())
    run(source, tmp_path / "b", PrepareConfig())
    a, b = tree_bytes(tmp_path / "a"), tree_bytes(tmp_path / "b")
    assert a["report.html"] == b["report.html"] and a["plots/doc_lengths.svg"] == b["plots/doc_lengths.svg"]
