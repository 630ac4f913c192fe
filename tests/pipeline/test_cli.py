"""User mistakes end in one line naming the file, line or field, and a non-zero exit."""

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
