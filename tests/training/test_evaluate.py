import json
import math
import shutil

import numpy as np
import pytest
import torch
from mlflow import MlflowClient

from training import tracking as mlf
from training.config import EvalConfig, ModelConfig
from training.evaluate import (bits_per_byte, causal_windows, evaluate, loss_sums, mlflow_metric_name, pick_device,
                               unigram_log_probs)
from training.model import GPT

LANG_KEYS = [f"{k}/lang={lang}" for k in ("val_loss", "perplexity", "bits_per_byte") for lang in ("en", "fa", "pl")]


def test_bits_per_byte_on_a_hand_computed_case():
    # A model with all weights zero predicts the uniform distribution: every target costs ln 4 nats.
    model = GPT(ModelConfig(preset="nano", block_size=4), vocab_size=4).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    tokens = np.array([1, 2, 3, 0, 1, 2], dtype=np.uint16)  # targets 2, 3, 0 (eot), 1, 2
    byte_lengths = np.array([0, 1, 2, 3])  # eot stands for no bytes
    sums = loss_sums(model, tokens, byte_lengths, block_size=4, batch_size=8, unigram=np.log(np.full(4, 0.25)))
    assert sums["tokens"] == 5 and sums["bytes"] == 2 + 3 + 0 + 1 + 2
    assert sums["nats"] == pytest.approx(5 * math.log(4)) and sums["unigram_nats"] == pytest.approx(5 * math.log(4))
    assert bits_per_byte(sums["nats"], sums["bytes"]) == pytest.approx(10 / 8)  # 5 targets x 2 bits over 8 bytes


@pytest.mark.parametrize("n, block, stride", [(100, 16, 8), (100, 16, 16), (100, 16, 5), (10, 16, 8), (17, 16, 8)])
def test_sliding_windows_score_every_target_once_with_context(n, block, stride):
    scored = []
    for begin, length, first in causal_windows(n, block, stride):
        assert length <= block and begin + length <= n - 1
        targets = list(range(begin + 1 + first, begin + length + 1))
        if begin > 0:
            assert first >= block - stride or begin == n - 1 - block  # context of at least block - stride
        scored += targets
    assert scored == list(range(1, n))


def test_unigram_baseline_is_add_one_smoothed_frequency():
    logp = unigram_log_probs(np.array([0, 0, 1], dtype=np.uint16), vocab_size=3)
    assert np.exp(logp).tolist() == pytest.approx([3 / 6, 2 / 6, 1 / 6])


def write_model_dir(directory, tokens, causal=True):
    torch.manual_seed(0)
    vocab = json.loads((tokens / "meta.json").read_text())["vocab_size"]
    model = GPT(ModelConfig(preset="nano"), vocab, causal=causal)
    directory.mkdir(parents=True)
    record = {"state_dict": model.state_dict(), "model_config": {"preset": "nano"}, "vocab_size": vocab,
              "eot_id": 0, "step": 0, "objective": "causal" if causal else "masked"}
    torch.save(record, directory / "model.pt")
    shutil.copyfile(tokens / "tokenizer.json", directory / "tokenizer.json")
    return model, record


def test_evaluate_reports_every_language_and_a_sample_gallery(tokens, tmp_path):
    write_model_dir(tmp_path / "model", tokens)
    config = EvalConfig(max_tokens=3000, samples=2, max_new_tokens=6, device="auto")
    metrics = evaluate(tmp_path / "model", tokens, tmp_path / "eval" / "metrics.json", config,
                       mlf.TrackingConfig(enabled=False))
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(LANG_KEYS) <= set(written) and "bits_per_byte/source=unknown" in written
    assert written["perplexity"] == pytest.approx(math.exp(written["val_loss"]))
    assert 0 < written["bits_per_byte"] and written["tokens"] <= 3000
    # the overall figure is the byte-weighted mean of the languages' (each target counted once, in one language)
    meta = json.loads((tokens / "meta.json").read_text())
    assert written["documents"] <= meta["val"]["documents"]
    description = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert description["stride"] == 16 and description["device"] == str(pick_device()) and len(description["eval_set"]) == 16
    samples = json.loads((tmp_path / "eval" / "samples.json").read_text())
    assert [s["prompt"] for s in samples] == config.prompts and all(len(s["samples"]) == 2 for s in samples)
    again = evaluate(tmp_path / "model", tokens, tmp_path / "again" / "metrics.json", config,
                     mlf.TrackingConfig(enabled=False))
    assert again["samples"] == metrics["samples"] and again["bits_per_byte"] == metrics["bits_per_byte"]  # fixed seed


def test_languages_add_up_to_the_whole(tokens, tmp_path):
    write_model_dir(tmp_path / "model", tokens)
    metrics = evaluate(tmp_path / "model", tokens, tmp_path / "metrics.json", EvalConfig(samples=0),
                       mlf.TrackingConfig(enabled=False))
    # bits per byte overall = sum(bpb_lang * bytes_lang) / bytes; bytes per language from nats/bpb
    meta = json.loads((tokens / "meta.json").read_text())
    assert metrics["documents"] == meta["val"]["documents"]  # the whole (small) split
    total_bytes = sum(meta["val"]["by_lang"][lang]["bytes"] for lang in ("en", "fa", "pl"))
    assert metrics["bytes"] == total_bytes
    weighted = sum(metrics[f"bits_per_byte/lang={lang}"] * meta["val"]["by_lang"][lang]["bytes"]
                   for lang in ("en", "fa", "pl")) / total_bytes
    assert weighted == pytest.approx(metrics["bits_per_byte"], rel=1e-9)


def test_masked_model_is_evaluated_on_masked_positions(tokens, tracking, tmp_path):
    write_model_dir(tmp_path / "model", tokens, causal=False)
    run_id = mlf.start_run(tracking, "masked")
    (tmp_path / "model" / "run.json").write_text(json.dumps({"run_id": run_id}))
    metrics = evaluate(tmp_path / "model", tokens, tmp_path / "metrics.json", EvalConfig(max_tokens=2000), tracking)
    logged = MlflowClient(tracking.tracking_uri).get_run(run_id).data.metrics
    assert logged["eval/masked_bits_per_byte/lang:pl"] == pytest.approx(metrics["masked_bits_per_byte/lang=pl"])
    assert "bits_per_byte" not in metrics and "masked_bits_per_byte/lang=fa" in metrics
    assert 0.1 < metrics["tokens"] / 2000 < 0.2  # about 15 % of the positions are scored
    assert metrics["samples"][0]["samples"] == []  # a bidirectional model does not generate
    assert metrics["registry"] is None  # nor is it registered as a text generator


def test_evaluate_a_past_mlflow_run_and_a_checkpoint(tokens, tracking, tmp_path):
    model, record = write_model_dir(tmp_path / "model", tokens)
    run_id = mlf.start_run(tracking, "past run")
    client = MlflowClient(tracking.tracking_uri)
    for name in ("model.pt", "tokenizer.json"):
        client.log_artifact(run_id, str(tmp_path / "model" / name))
    config = EvalConfig(max_tokens=1500, samples=0)
    by_dir = evaluate(tmp_path / "model", tokens, tmp_path / "a.json", config, mlf.TrackingConfig(enabled=False))
    by_run = evaluate(run_id, tokens, tmp_path / "b.json", config, tracking)
    assert by_run["run_id"] == run_id and by_run["bits_per_byte"] == pytest.approx(by_dir["bits_per_byte"])
    logged = client.get_run(run_id).data
    assert logged.metrics[mlflow_metric_name("bits_per_byte/lang=fa")] == pytest.approx(by_dir["bits_per_byte/lang=fa"])
    assert logged.tags["eval.set"] == by_run["eval_set"]
    assert {a.path for a in client.list_artifacts(run_id, "eval")} >= {"eval/b.json", "eval/samples.md"}

    # a Lightning checkpoint as training writes it (keys model.*, the run identity under "tokenmill")
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in record["state_dict"].items()},
                  "tokenmill": {"identity": {"model": {"preset": "nano"}, "train": {"objective": "causal"},
                                             "tokenizer": {"vocab_size": record["vocab_size"]}},
                                "mlflow_run_id": run_id}}
    torch.save(checkpoint, tmp_path / "step-00000010.ckpt")
    by_ckpt = evaluate(tmp_path / "step-00000010.ckpt", tokens, tmp_path / "c.json", config, tracking)
    assert by_ckpt["bits_per_byte"] == pytest.approx(by_dir["bits_per_byte"]) and by_ckpt["run_id"] == run_id


def test_evaluate_refuses_what_it_cannot_read(tokens, char_tokens_dir, tmp_path):
    from tokenmill.errors import UserError

    with pytest.raises(UserError, match="not a model directory, a .ckpt checkpoint, an MLflow run id"):
        evaluate(tmp_path / "missing", tokens, tmp_path / "m.json", EvalConfig(), mlf.TrackingConfig(enabled=False))
    write_model_dir(tmp_path / "model", tokens)
    with pytest.raises(UserError, match="trained with another tokenizer"):
        evaluate(tmp_path / "model", char_tokens_dir, tmp_path / "m.json", EvalConfig(),
                 mlf.TrackingConfig(enabled=False))


@pytest.fixture(scope="module")
def char_tokens_dir(corpus, tmp_path_factory):
    from training.config import TokenizeConfig
    from training.tokenizer import tokenize

    out = tmp_path_factory.mktemp("char-eval") / "tokens"
    tokenize(corpus, out, TokenizeConfig(kind="char", vocab_size=400, val_fraction=0.2))
    return out
