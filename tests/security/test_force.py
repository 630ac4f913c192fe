"""--force replaces a stage's own output, an empty directory or a file; anything else is moved aside to a
dated sibling, said on one line, never deleted. The same guard covers `<out>.partial`, the files
`tokenmill evaluate` writes beside --out, and fine-tuning's --out (checked before training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import main


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs.jsonl").write_text('{"id": "1", "text": "reach me at a@example.org"}\n')
    return tmp_path


def error_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if "error" in line or "--force" in line]


def test_force_moves_a_users_directory_aside_instead_of_deleting_it(project: Path, capsys):
    (project / "out").mkdir()
    (project / "out" / "thesis.tex").write_text("precious")
    assert main(["scrub", "--in", "docs.jsonl", "--out", "out", "--force"]) == 0
    [aside] = project.glob("out.aside-*")
    assert (aside / "thesis.tex").read_text() == "precious"
    [said] = [line for line in capsys.readouterr().err.splitlines() if "moved aside" in line]
    assert "out" in said and aside.name in said
    assert (project / "out" / "stats.json").is_file()


def test_force_replaces_a_file(project: Path):
    (project / "out").write_text("a file")
    assert main(["scrub", "--in", "docs.jsonl", "--out", "out", "--force"]) == 0
    assert (project / "out" / "stats.json").is_file() and not list(project.glob("out.aside-*"))


def test_a_partial_directory_without_the_crawls_marker_is_not_deleted(project: Path, capsys):
    (project / "site").mkdir()
    (project / "site" / "index.html").write_text("<html><body>hello</body></html>")
    (project / "site.yaml").write_text("name: site\nserve: site\nallow_private: true\nstart_urls: [/index.html]\n"
                                       "max_pages: 5\nmax_depth: 1\n")
    (project / "crawl.partial").mkdir()
    (project / "crawl.partial" / "thesis.tex").write_text("precious")
    assert main(["crawl", "site.yaml", "--out", "crawl"]) == 2
    [line] = error_lines(capsys)
    assert "crawl.partial" in line and "job.json" in line
    assert (project / "crawl.partial" / "thesis.tex").read_text() == "precious"


@pytest.mark.parametrize("name", ["evaluation.json", "samples.md", "registry.json"])
def test_evaluate_does_not_overwrite_a_users_file_beside_its_out(project: Path, capsys, name: str):
    (project / name).write_text("my notes")
    assert main(["evaluate", "--model", "m", "--tokens", "t", "--out", "metrics.json"]) == 2
    [line] = error_lines(capsys)
    assert name in line
    assert (project / name).read_text() == "my notes"


def test_finetune_checks_its_out_before_it_trains(project: Path, capsys):
    (project / "sft").mkdir()
    (project / "sft" / "thesis.tex").write_text("precious")
    assert main(["finetune", "sft", "--data", "no-such-data.jsonl", "--out", "sft"]) == 2
    [line] = error_lines(capsys)
    assert "sft: is a directory without a stats.json" in line
