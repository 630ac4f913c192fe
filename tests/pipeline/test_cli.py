"""User mistakes end in one line naming the file, line or field, and a non-zero exit."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


def tokenmill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr, proc.stderr
    error = [line for line in lines if "error:" in line]
    assert len(error) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in error[0], error[0]


def test_help_lists_every_stage(tmp_path: Path):
    proc = tokenmill("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for name in ("crawl", "prepare", "filter", "dedup", "scrub", "tokenize", "train", "evaluate", "flow"):
        assert name in proc.stdout


@pytest.mark.parametrize("content, fragments", [
    ("prepare:\n  quality:\n    min_wordz: 3\n", ["params.yaml", "prepare.quality", "min_wordz"]),
    ("train:\n  max_steps: many\n", ["params.yaml: train.max_steps", "expected int"]),
    ("train: [1\n", ["params.yaml:"]),
])
def test_bad_params_file(tmp_path: Path, content: str, fragments: list[str]):
    (tmp_path / "params.yaml").write_text(content)
    assert_one_line_error(tokenmill("tokenize", cwd=tmp_path), *fragments)


def test_missing_input(tmp_path: Path):
    proc = tokenmill("prepare", "--in", "nowhere", "--out", "out", cwd=tmp_path)
    assert_one_line_error(proc, "nowhere")


def test_bad_document_line(tmp_path: Path):
    (tmp_path / "docs.jsonl").write_text('{"id": "1", "text": "fine"}\n{"text": "no id"}\n')
    proc = tokenmill("scrub", "--in", "docs.jsonl", "--out", "out", cwd=tmp_path)
    assert_one_line_error(proc, "docs.jsonl:2")


def test_unknown_source(tmp_path: Path):
    (tmp_path / "sources").mkdir()
    proc = tokenmill("crawl", "no-such-source", "--out", "out", cwd=tmp_path)
    assert_one_line_error(proc, "no-such-source")


def test_out_refuses_a_directory_of_unrelated_files(tmp_path: Path):
    (tmp_path / "docs.jsonl").write_text('{"id": "1", "text": "reach me at a@example.org"}\n')
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    proc = tokenmill("scrub", "--in", "docs.jsonl", "--out", "out", cwd=tmp_path)
    assert_one_line_error(proc, "out", "not an earlier prepare output", "--force")
    assert proc.returncode == 2
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"
    # the stage's own earlier output is replaced; --force moves anything else aside (never deletes it)
    assert tokenmill("scrub", "--in", "docs.jsonl", "--out", "scrubbed", cwd=tmp_path).returncode == 0
    assert tokenmill("scrub", "--in", "docs.jsonl", "--out", "scrubbed", cwd=tmp_path).returncode == 0
    assert tokenmill("scrub", "--in", "docs.jsonl", "--out", "out", "--force", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "out" / "thesis.tex").exists()
    assert [p.read_text() for p in tmp_path.glob("out.aside-*/thesis.tex")] == ["precious"]


def test_evaluate_refuses_to_overwrite_a_file_that_is_not_metrics(tmp_path: Path):
    (tmp_path / "notes.json").write_text('{"todo": 1}')
    proc = tokenmill("evaluate", "--model", "m", "--tokens", "t", "--out", "notes.json", cwd=tmp_path)
    assert_one_line_error(proc, "notes.json", "--force")
    assert (tmp_path / "notes.json").read_text() == '{"todo": 1}'


def test_transient_errors_print_one_line_and_exit_75(capsys):
    from pipeline.cli import EXIT_TRANSIENT, run_reporting_errors
    from tokenmill.errors import TransientError

    def crawl_that_was_killed():
        raise TransientError("the crawler exited with status -9; run the crawl again to resume")

    assert run_reporting_errors("crawl", crawl_that_was_killed) == EXIT_TRANSIENT == 75
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tokenmill crawl: error (transient, retry later): the crawler exited with status -9; "
                   "run the crawl again to resume"]


def test_flow_command_runs_the_flow_module_and_passes_its_exit_status(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("train:\n  max_stepz: 3\n")
    proc = tokenmill("flow", "pipeline", cwd=tmp_path)
    assert_one_line_error(proc, "max_stepz")


def test_prepare_in_a_crawl_directory_reads_its_documents(tmp_path: Path):
    """`--in data/crawl` (stats.json, documents/, warc/) means the crawl's documents/, for prepare and
    the step groups alike."""
    crawl = tmp_path / "crawl"
    (crawl / "documents").mkdir(parents=True)
    (crawl / "warc").mkdir()
    (crawl / "stats.json").write_text('{"stage": "crawl"}')
    (crawl / "documents" / "part-00000.jsonl").write_text('{"id": "1", "text": "reach me at a@example.org"}\n')
    proc = tokenmill("prepare", "--in", "crawl", "--out", "corpus", "--steps", "pii", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "reading crawl/documents (the documents of the crawl at crawl)" in proc.stderr
    assert "documents_out=1" in proc.stdout
    proc = tokenmill("scrub", "--in", "crawl", "--out", "scrubbed", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert_one_line_error(tokenmill("prepare", "--in", "crawl/warc", "--out", "x", cwd=tmp_path), "crawl/warc")


def test_library_progress_bars_are_off_only_for_the_program_in_a_piped_log(monkeypatch):
    from pipeline import cli

    for name in ("TQDM_DISABLE", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        monkeypatch.setenv(name, "")  # recorded as it was (absent), so the test leaves the environment as found
        monkeypatch.delenv(name)
    assert cli.main(["sources", "list"]) in (0, 2)  # a caller's process keeps its own environment
    assert "TQDM_DISABLE" not in os.environ
    cli.quiet_library_bars()  # what `tokenmill` does first when its stderr is not a terminal (as here)
    assert os.environ["TQDM_DISABLE"] == "1"
