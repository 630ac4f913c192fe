"""Shared fixtures: a small English/Persian/Polish corpus, its tokens, a nano config, an MLflow store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokenmill.documents import Document, ShardWriter
from training.config import ModelConfig, TokenizeConfig, TrackingConfig, TrainConfig
from training.tokenizer import tokenize

EN = ["The river runs through the old city of {n} bridges.", "In {n} the library opened its doors again.",
      "Weather today: sunny, 21 degrees, light wind from the west."]
FA = ["می‌خواهم کتاب‌های تاریخی را در سال ۱۴۰۲ بخوانم.", "این شهر {n} پل قدیمی دارد که هنوز استفاده می‌شوند.",
      "قیمت نان امروز ۱۲٬۵۰۰ تومان است و ساعت ۸:۳۰ نانوایی باز می‌شود."]
PL = ["Zażółć gęślą jaźń — powiedział żółw w roku {n}.", "Biblioteka w Łodzi ma {n} tysięcy książek.",
      "Źródło rzeki leży wysoko w górach, gdzie śnieg topnieje późno."]


def write_corpus(directory: Path, documents: int = 90) -> Path:
    with ShardWriter(directory, shard_size=40) as writer:
        for i in range(documents):
            lang, sentences = [("en", EN), ("fa", FA), ("pl", PL)][i % 3]
            text = " ".join(sentences[(i + k) % 3].format(n=i * 7 + k) for k in range(6))
            writer.write(Document(f"doc-{i:04d}", text, {"lang": lang}))
    return directory


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus") / "corpus")


@pytest.fixture(scope="session")
def tokenize_config() -> TokenizeConfig:
    return TokenizeConfig(vocab_size=512, val_fraction=0.2, min_frequency=2)


@pytest.fixture(scope="session")
def tokens(corpus, tokenize_config, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tokens") / "tokens"
    tokenize(corpus, out, tokenize_config)
    return out


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def tracking(mlflow_store, request) -> TrackingConfig:
    """One sqlite store for the session (creating one takes seconds); an experiment per test."""
    return TrackingConfig(tracking_uri=f"sqlite:///{mlflow_store}/mlflow.db", experiment=request.node.name,
                          artifact_location=str(mlflow_store / "artifacts" / request.node.name))


@pytest.fixture
def nano() -> ModelConfig:
    return ModelConfig(preset="nano")


@pytest.fixture
def tiny_train():
    """A factory of TrainConfigs for a few CPU steps of the nano model."""
    return _tiny_train


def _tiny_train(**overrides) -> TrainConfig:
    values = dict(batch_size=4, max_steps=12, warmup_steps=2, lr=3e-3, min_lr=3e-4, log_every=2, val_every=4,
                  val_batches=2, checkpoint_every=4, accelerator="cpu", devices=1)
    return TrainConfig(**{**values, **overrides})


@pytest.fixture(scope="session")
def gpt_dir(tokens, tmp_path_factory) -> Path:
    """A nano GPT with a 96-token context trained 30 plain-PyTorch steps on `tokens`, saved as a model
    directory (as the train stage writes it: model.pt + tokenizer.json), for the tests that generate text."""
    import json
    import shutil

    import numpy as np
    import torch

    from training.model import GPT

    torch.manual_seed(0)
    meta = json.loads((tokens / "meta.json").read_text())
    model = GPT(ModelConfig(preset="nano", block_size=96), meta["vocab_size"])
    train = np.memmap(tokens / "train.bin", dtype=meta["dtype"], mode="r")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(30):
        starts = rng.integers(0, len(train) - 33, 16)
        window = torch.from_numpy(np.stack([train[s:s + 33] for s in starts]).astype(np.int64))
        loss = model(window[:, :-1], window[:, 1:])[1]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    directory = tmp_path_factory.mktemp("gpt") / "model"
    directory.mkdir()
    torch.save({"state_dict": model.state_dict(), "model_config": {"preset": "nano", "block_size": 96},
                "vocab_size": meta["vocab_size"], "eot_id": 0, "step": 30}, directory / "model.pt")
    shutil.copyfile(tokens / "tokenizer.json", directory / "tokenizer.json")
    return directory
