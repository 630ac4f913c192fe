"""`tokenmill evalset` and tokenize through the CLI; where ad-hoc runs find the evaluation set."""

import json
import subprocess
import sys
from pathlib import Path

from pipeline.params import load_params
from tokenmill.documents import Document, ShardWriter

PROJECT_PARAMS = Path(__file__).parents[2] / "params.yaml"
WORDS = ["river", "bridge", "market", "harbour", "library", "winter", "garden", "tower"]


def tokenmill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def write_corpus(directory: Path, start: int, documents: int) -> None:
    with ShardWriter(directory) as writer:
        for i in range(start, start + documents):
            text = " ".join(f"{WORDS[(i + k) % 8]} {i * 3 + k}" for k in range(30))
            writer.write(Document(f"page-{i}", text, {"lang": "en"}))


def test_the_evaluation_set_stays_put_when_the_corpus_changes(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("tokenize: {vocab_size: 300}\nevalset: {fraction: 0.2}\n")
    write_corpus(tmp_path / "data/corpus", 0, 60)
    first = json.loads(tokenmill("evalset", "--json", cwd=tmp_path).stdout)
    tokenmill("tokenize", cwd=tmp_path)
    v1 = json.loads((tmp_path / "data/tokens/meta.json").read_text())
    assert not first["kept"] and v1["eval_set"]["digest"] == first["digest"]
    assert v1["val"]["documents"] == first["documents"] and v1["train"]["documents"] == 60 - first["documents"]

    write_corpus(tmp_path / "data/corpus", 30, 60)  # the next corpus version: half old pages, half new
    assert json.loads(tokenmill("evalset", "--json", cwd=tmp_path).stdout)["kept"]
    tokenmill("tokenize", cwd=tmp_path)
    v2 = json.loads((tmp_path / "data/tokens/meta.json").read_text())
    assert v2["eval_set"]["digest"] == first["digest"] and v2["val"]["documents"] == first["documents"]

    refreshed = json.loads(tokenmill("evalset", "--refresh", "--json", cwd=tmp_path).stdout)
    assert not refreshed["kept"] and refreshed["digest"] != first["digest"]


def test_tokenize_makes_a_missing_evaluation_set_first_and_can_do_without(tmp_path: Path):
    (tmp_path / "params.yaml").write_text("tokenize: {vocab_size: 300, val_fraction: 0.2}\nevalset: {fraction: 0.2}\n")
    write_corpus(tmp_path / "data/corpus", 0, 60)
    proc = tokenmill("tokenize", cwd=tmp_path)
    assert "made the evaluation set data/evalset" in proc.stderr and (tmp_path / "data/evalset/meta.json").is_file()
    with_set = json.loads((tmp_path / "data/tokens/meta.json").read_text())
    tokenmill("tokenize", "--eval-set", "", "--out", "data/tokens-by-id", cwd=tmp_path)
    by_id = json.loads((tmp_path / "data/tokens-by-id/meta.json").read_text())
    # with the default rule, the frozen set holds the documents the id-hash split would have held out
    assert by_id["eval_set"] is None and by_id["val"]["documents"] == with_set["val"]["documents"]


def test_ad_hoc_runs_keep_the_versioned_evaluation_set():
    corpus_variant = load_params(PROJECT_PARAMS, ["prepare.quality.min_words=10"])
    assert corpus_variant.paths.corpus.startswith("runs/") and corpus_variant.paths.tokens.startswith("runs/")
    assert corpus_variant.paths.evalset == "data/evalset"  # evaluated on the same documents as the versioned run
    other_set = load_params(PROJECT_PARAMS, ["evalset.fraction=0.1"])
    assert other_set.paths.evalset == "runs/evalset.fraction=0.1/data/evalset"
    assert other_set.paths.corpus == "data/corpus" and other_set.paths.tokens.startswith("runs/")
