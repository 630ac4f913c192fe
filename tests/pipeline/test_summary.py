"""`tokenmill summary`: the end-of-run summary, and what it says when there is nothing to summarize."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main


def test_outside_a_checkout_it_blames_the_directory_not_the_metrics(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["summary"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tokenmill summary: error: not a tokenmill checkout: no dvc.yaml or params.yaml in ")
    assert str(tmp_path) in err and "metrics" not in err and "\n" not in err


@pytest.mark.parametrize("marker", ["dvc.yaml", "params.yaml"])
def test_in_a_checkout_without_metrics_it_says_to_run_the_pipeline(tmp_path: Path, monkeypatch, capsys, marker):
    monkeypatch.chdir(tmp_path)
    (tmp_path / marker).write_text("{}\n")
    assert main(["summary"]) == 2
    assert "metrics.json: no evaluation metrics yet; run `dvc repro`" in capsys.readouterr().err


def test_a_checkout_with_metrics_is_summarized(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("tracking:\n  enabled: false\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"val_loss": 5.0, "bits_per_byte": 4.5}))
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "bits_per_byte     4.5000" in out


def test_the_summary_shows_the_harness_tasks_the_export_and_runnable_next_steps(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("tracking:\n  enabled: false\n")
    (tmp_path / "metrics.json").write_text(json.dumps({"bits_per_byte": 4.5}))
    (tmp_path / "tasks.json").write_text(json.dumps({"task/tokenmill_last_word_en/acc": 0.25,
                                                     "task/tokenmill_last_word_en/acc_stderr": 0.1}))
    (tmp_path / "models" / "hf").mkdir(parents=True)
    (tmp_path / "models" / "hf" / "config.json").write_text("{}")
    assert main(["summary"]) == 0
    out = capsys.readouterr().out
    assert "tokenmill_last_word_en/acc" in out and "0.2500" in out and "acc_stderr" not in out
    assert "transformers      models/hf" in out
    assert "source .venv/bin/activate" in out  # the hints run as printed once the venv is active
