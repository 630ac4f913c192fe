"""The registry's champion evaluated on a new corpus version with its own tokenizer, on a real MLflow store."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from pipeline.champion import corpus_metric, evaluate_on_corpus
from tokenmill.documents import Document, ShardWriter
from training import tracking as mlf
from training.config import EvalConfig, ModelConfig, TokenizeConfig, TrackingConfig
from training.evaluate import evaluate
from training.model import GPT
from training.registry import CHAMPION
from training.tokenizer import tokenize

SENTENCES = ["The river runs through the old city of {n} bridges.",
             "این شهر {n} پل قدیمی دارد که هنوز استفاده می‌شوند.",
             "Biblioteka w Łodzi ma {n} tysięcy książek."]


def write_corpus(directory: Path, documents: int, offset: int = 0) -> Path:
    with ShardWriter(directory) as writer:
        writer.write_all(Document(f"doc-{offset + i}", " ".join(SENTENCES[(i + k) % 3].format(n=offset + i * 7 + k)
                                                                   for k in range(4)), {"lang": ["en", "fa", "pl"][i % 3]})
                         for i in range(documents))
    return directory


@pytest.fixture
def tracking(tmp_path: Path) -> TrackingConfig:
    return TrackingConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db", experiment="champion",
                          artifact_location=str(tmp_path / "artifacts"), registered_model="gpt-champion")


CONFIGS = {"tokenize": TokenizeConfig(vocab_size=300, val_fraction=0.3, min_frequency=2),
           "evaluate": EvalConfig(max_tokens=1500, samples=0)}


def crown_a_champion(tmp_path: Path, tracking: TrackingConfig, evalset: Path | None = None) -> dict:
    """A nano GPT on corpus-v1's tokens (its validation documents the frozen `evalset` when given), as the
    train stage leaves it, evaluated; registered as version 1, the champion."""
    tokens = tmp_path / "v1-tokens"
    corpus = tmp_path / "v1" if (tmp_path / "v1").is_dir() else write_corpus(tmp_path / "v1", 60)
    tokenize(corpus, tokens, CONFIGS["tokenize"], eval_set=evalset)
    torch.manual_seed(0)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    vocab_size = json.loads((tokens / "meta.json").read_text())["vocab_size"]
    model = GPT(ModelConfig(preset="nano"), vocab_size)
    torch.save({"state_dict": model.state_dict(), "model_config": {"preset": "nano"}, "vocab_size": vocab_size,
                "eot_id": 0, "step": 0}, model_dir / "model.pt")
    shutil.copyfile(tokens / "tokenizer.json", model_dir / "tokenizer.json")
    run_id = mlf.start_run(tracking, "nano")
    for name in ("model.pt", "tokenizer.json"):  # as the train stage logs them
        mlf.client(tracking).log_artifact(run_id, str(model_dir / name))
    (model_dir / "run.json").write_text(json.dumps({"run_id": run_id}))
    crowned = evaluate(model_dir, tokens, tmp_path / "v1-eval" / "metrics.json", CONFIGS["evaluate"],
                       dataclasses.replace(tracking, register=False))
    # Registered and crowned directly (training/registry.py's gate, with its pyfunc, is tested there).
    client = mlf.client(tracking)
    client.create_registered_model(tracking.registered_model)
    version = client.create_model_version(tracking.registered_model, f"runs:/{run_id}/model.pt", run_id=run_id)
    client.set_registered_model_alias(tracking.registered_model, CHAMPION, version.version)
    return crowned


def test_the_champion_is_evaluated_on_a_new_corpus_with_its_own_tokenizer(tmp_path: Path, tracking):
    assert evaluate_on_corpus(write_corpus(tmp_path / "v2", 45, offset=1000), "corpus-v2", CONFIGS["tokenize"],
                              CONFIGS["evaluate"], tracking) is None  # no champion yet: nothing to do
    crowned = crown_a_champion(tmp_path, tracking)

    result = evaluate_on_corpus(tmp_path / "v2", "corpus-v2", CONFIGS["tokenize"], CONFIGS["evaluate"], tracking)
    assert (result["version"], result["run_id"], result["corpus_version"]) == (1, crowned["run_id"], "corpus-v2")
    assert math.isfinite(result["bits_per_byte"]) and result["bits_per_byte"] > 0
    assert result["eval_set"] != crowned["eval_set"]  # other text than the champion was measured on

    run = mlf.client(tracking).get_run(crowned["run_id"]).data
    assert run.metrics[corpus_metric("corpus-v2", "bits_per_byte")] == pytest.approx(result["bits_per_byte"])
    assert corpus_metric("corpus-v2", "bits_per_byte/lang=fa") in run.metrics
    assert run.metrics["eval/bits_per_byte"] == pytest.approx(crowned["bits_per_byte"])  # its own figure kept
    assert run.tags["eval.corpus-v2.set"] == result["eval_set"]
    assert run.tags["eval.corpus-v2.model_version"] == "1"
    artifacts = {a.path for a in mlf.client(tracking).list_artifacts(crowned["run_id"], "eval/corpus-v2")}
    assert {"eval/corpus-v2/metrics.json", "eval/corpus-v2/evaluation.json"} <= artifacts
    versions = mlf.client(tracking).search_model_versions("name='gpt-champion'")
    assert len(versions) == 1  # measuring the champion registers nothing


def test_the_champion_has_one_figure_on_the_frozen_evaluation_set(tmp_path: Path, tracking):
    """The evaluate stage and the evaluate-champion deployment measure the same documents in the same order:
    one evaluation set digest and one bits-per-byte per model, whichever way it runs."""
    from training.config import EvalSetConfig
    from training.evalset import make_evalset

    corpus = write_corpus(tmp_path / "v1", 60)
    make_evalset(corpus, tmp_path / "evalset", EvalSetConfig(fraction=0.2))
    staged = crown_a_champion(tmp_path, tracking, evalset=tmp_path / "evalset")

    deployed = evaluate_on_corpus(corpus, "corpus-v1", CONFIGS["tokenize"], CONFIGS["evaluate"], tracking,
                                  evalset=tmp_path / "evalset")
    assert deployed["eval_set"] == staged["eval_set"]
    assert deployed["bits_per_byte"] == staged["bits_per_byte"]
