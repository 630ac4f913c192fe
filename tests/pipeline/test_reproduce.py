"""`tokenmill reproduce`: a model trained again from what its MLflow run records, in a real git repository
with a real DVC cache and MLflow store: same tokenizer, bitwise the same weights, the same bits per byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.params import load_params
from pipeline.reproduce import recorded, reproduce
from tokenmill.documents import Document, ShardWriter
from tokenmill.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
SENTENCES = ["The river runs through the old city of {n} bridges and {m} towers.",
             "این شهر {n} پل قدیمی و {m} برج دارد که هنوز استفاده می‌شوند.",
             "Biblioteka w Łodzi ma {n} tysięcy książek i {m} czytelni."]
TINY = {"tokenize": {"vocab_size": 300}, "model": {"preset": "nano"},
        "train": {"max_steps": 4, "batch_size": 2, "warmup_steps": 1, "val_every": 2, "val_batches": 1,
                  "checkpoint_every": 2, "precision": "32-true", "devices": 1},
        "evaluate": {"samples": 0, "max_tokens": 3000}}


def _cli(project: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(project), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=project, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def _project(tmp_path: Path) -> Path:
    """A clone of this repository at HEAD whose params.yaml (committed) trains a nano model in seconds,
    and a corpus in its DVC cache."""
    project = tmp_path / "project"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(project)], check=True)
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    for section, values in TINY.items():
        params[section].update(values)
    params["tracking"].update(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                              artifact_location=str(tmp_path / "artifacts"))
    (project / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True, sort_keys=False), encoding="utf-8")
    subprocess.run([*GIT, "commit", "-qam", "tiny params"], cwd=project, check=True)
    with ShardWriter(project / "mycorpus") as writer:
        writer.write_all(Document(f"doc-{i}", " ".join(SENTENCES[(i + k) % 3].format(n=i * 7 + k, m=i + 3 * k)
                                                        for k in range(6)), {"lang": ["en", "fa", "pl"][i % 3]})
                         for i in range(60))
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "mycorpus"], cwd=project, check=True)
    return project


@pytest.mark.slow
def test_a_run_is_reproduced_bitwise_from_its_commit_data_and_overrides(tmp_path, monkeypatch):
    project = _project(tmp_path)
    _cli(project, "tokenize", "--in", "mycorpus", "--out", "tok", "--eval-set", "")
    _cli(project, "train", "--tokens", "tok", "--out", "model", "--checkpoints", "ckpt", "--set", "train.lr=0.003")
    _cli(project, "evaluate", "--model", "model", "--tokens", "tok", "--out", "metrics.json")
    run_id = json.loads((project / "model" / "run.json").read_text())["run_id"]
    monkeypatch.chdir(project)
    tracking = load_params(project / "params.yaml").tracking

    result = reproduce(run_id, tracking, tmp_path / "again")

    assert result["overrides"] == ["train.lr=0.003"]  # the --set the run had; the rest is the commit's params
    assert result["cpu_threads"] == 1
    assert result["tokenizer_identical"] and result["weights_bitwise_equal"] and result["reproduced"]
    bpb = result["bits_per_byte"]
    assert bpb["recorded"] == bpb["reproduced"] == json.loads((project / "metrics.json").read_text())["bits_per_byte"]
    assert json.loads((tmp_path / "again" / ".reproduce" / "reproduce.json").read_text())["reproduced"] is True

    with pytest.raises(UserError, match="exists"):
        reproduce(run_id, tracking, tmp_path / "again")  # never over what is there
    with pytest.raises(UserError, match="no such MLflow run"):
        recorded("0" * 32, tracking)
