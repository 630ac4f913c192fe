import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from tokenmill.config import to_dict
from training.evaluate import evaluate
from training.config import EvalConfig
from training.tracking import corpus_hash, dvc_md5
from training.train import load_model, train


def read_csv(path: Path) -> list[list[str]]:
    return [line.split(",") for line in path.read_text().splitlines()]


def test_tiny_train_end_to_end_tracked_in_mlflow(corpus, tokens, nano, tracking, tiny_train, tmp_path,
                                                 monkeypatch):
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.1")  # sampled within even a fast tiny run
    result = train(tokens, tmp_path / "model", tiny_train(), nano, tracking)
    out = tmp_path / "model"
    assert result["steps"] == 12 and result["val_loss"] < 6.3  # ln(512) = 6.24 at init
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "history", "model.pt", "plots", "run.json",
                                                      "stats.json", "tokenizer.json"]
    assert json.loads((out / "stats.json").read_text())["tokens_seen"] == 12 * 4 * 32
    assert (out / "plots" / "loss.png").read_bytes()[:4] == b"\x89PNG"
    train_rows, val_rows = read_csv(out / "history" / "train.csv"), read_csv(out / "history" / "val.csv")
    assert train_rows[0][:4] == ["step", "loss", "lr", "tokens_per_s"] and [r[0] for r in train_rows[1:]] == [
        "2", "4", "6", "8", "10", "12"]
    assert [r[0] for r in val_rows] == ["step", "4", "8", "12"]
    model = load_model(out)
    assert model.vocab_size == 512 and not model.training

    run_info = json.loads((out / "run.json").read_text())
    client = MlflowClient(tracking.tracking_uri)
    run = client.get_run(run_info["run_id"])
    assert run.info.experiment_id == run_info["experiment_id"]
    assert run.data.params["train.max_steps"] == "12" and run.data.params["model.n_layer"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [2, 4, 6, 8, 10, 12]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val/loss")] == [4, 8, 12]
    assert client.get_metric_history(run.info.run_id, "train/tokens_per_s")[-1].value > 0
    assert client.get_metric_history(run.info.run_id, "train/tokens_per_s_per_device")[-1].value > 0
    assert any(key.startswith("system/") for key in run.data.metrics)  # MLflow's system metrics monitor
    assert run.data.params["parameters.total"] == str(result["parameters"])
    assert "model_size.json" in {a.path for a in client.list_artifacts(run.info.run_id)}
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.pt", "tokenizer.json", "config.json", "plots", "history", "tokens"} <= artifacts
    (dataset_input,) = run.inputs.dataset_inputs
    assert dataset_input.dataset.digest == dvc_md5(corpus)
    assert {t.key: t.value for t in dataset_input.tags}["hash_source"] == "computed"
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == Path(tracking.artifact_location).resolve().as_uri()

    metrics = evaluate(out, tokens, tmp_path / "eval" / "metrics.json",
                       EvalConfig(max_tokens=2000, samples=2, max_new_tokens=8), tracking)
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["val_loss"] == pytest.approx(metrics["val_loss"]) and 0 < written["val_loss"] < 6.3
    assert written["perplexity"] == pytest.approx(2.718281828 ** written["val_loss"], rel=1e-6)
    assert 0 < written["bits_per_byte"] < 8 and written["tokens"] <= 2000 and written["bytes"] > written["tokens"]
    samples = json.loads((tmp_path / "eval" / "samples.json").read_text())
    assert [s["prompt"] for s in samples] == EvalConfig().prompts and all(len(s["samples"]) == 2 for s in samples)
    assert client.get_metric_history(run.info.run_id, "eval/bits_per_byte")[0].value == pytest.approx(
        written["bits_per_byte"])


def test_two_process_ddp_makes_one_mlflow_run(tokens, tracking, tmp_path):
    params = {
        "model": {"preset": "nano"},
        "train": {"batch_size": 4, "max_steps": 6, "warmup_steps": 1, "log_every": 2, "val_every": 3,
                  "val_batches": 2, "checkpoint_every": 3, "accelerator": "cpu", "devices": 2, "strategy": "ddp"},
        "tracking": to_dict(tracking),
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--params", str(tmp_path / "params.yaml"),
                           "--tokens", str(tokens), "--out", str(tmp_path / "model")],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Starting with 2 processes" in proc.stderr
    client = MlflowClient(tracking.tracking_uri)
    experiment = client.get_experiment_by_name(tracking.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == json.loads((tmp_path / "model" / "run.json").read_text())["run_id"]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [2, 4, 6]
    assert json.loads((tmp_path / "model" / "config.json").read_text())["steps"] == 6


def test_corpus_hash_says_whether_dvc_lock_records_it(corpus, tmp_path):
    lock = tmp_path / "dvc.lock"

    def write_lock(md5: str) -> None:
        lock.write_text(yaml.safe_dump({"schema": "2.0", "stages": {"prepare": {"outs": [
            {"path": os.path.relpath(corpus, tmp_path), "hash": "md5", "md5": md5}]}}}))

    write_lock(dvc_md5(corpus))
    assert corpus_hash(corpus, lock) == (dvc_md5(corpus), "dvc.lock")
    write_lock("0" * 32 + ".dir")  # a stale lock names another version: the files win
    assert corpus_hash(corpus, lock) == (dvc_md5(corpus), "computed")
    assert corpus_hash(corpus, tmp_path / "missing.lock") == (dvc_md5(corpus), "computed")


def test_dvc_md5_matches_dvc(corpus, tmp_path):
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_objects.fs.local import LocalFileSystem

    fs = LocalFileSystem()
    _, _, obj = build(HashFileDB(fs, str(tmp_path / "cache")), str(corpus), fs, "md5")
    assert dvc_md5(corpus) == obj.hash_info.value


def test_masked_objective_trains_a_bidirectional_model(tokens, nano, tiny_train, tmp_path, capfd):
    from training.config import TrackingConfig

    result = train(tokens, tmp_path / "model", tiny_train(objective="masked", max_steps=8, lr=1e-2), nano,
                   TrackingConfig(enabled=False))
    err = capfd.readouterr().err  # stderr is not a terminal here: plain lines, no redrawn bar
    assert "\r" not in err and "train: step 8/8 (100%), loss " in err and " tokens/s" in err
    assert "train: 42,144 parameters: embeddings" in err and "B/param" in err
    history = read_csv(tmp_path / "model" / "history" / "train.csv")
    assert float(history[-1][1]) < float(history[1][1]) and result["val_loss"] < 6.3
    model = load_model(tmp_path / "model")
    assert model.causal is False and torch.load(tmp_path / "model" / "model.pt")["objective"] == "masked"
    x = torch.arange(4, 20).view(1, -1)  # bidirectional: the first position sees the last
    changed = x.clone()
    changed[0, -1] = 21
    assert not torch.equal(model(x)[0][0, 0], model(changed)[0][0, 0])


def test_first_process_of_the_second_node_is_not_global_rank_zero(tiny_train, monkeypatch):
    """What decides who opens the MLflow run and moves checkpoints: known when the Trainer is built,
    before any process group exists (nothing is launched here)."""
    from training.train import make_trainer

    monkeypatch.setenv("NODE_RANK", "1")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    config = tiny_train(num_nodes=2, strategy="ddp", devices=1)
    try:
        trainer = make_trainer(config, "32-true", [])
        assert trainer.global_rank == 1 and not trainer.is_global_zero and trainer.world_size == 2
    finally:
        monkeypatch.setenv("NODE_RANK", "0")
        assert make_trainer(config, "32-true", []).is_global_zero  # also resets Lightning's rank_zero_only


def test_training_log_has_no_lightning_noise(tokens, nano, tiny_train, tmp_path, capfd, caplog):
    """A piped training log has what a user reads: no "💡 Tip" adverts, no "`weights_only` was not set"
    per checkpoint, no FutureWarning about the LeafSpec of Lightning's own _pytree."""
    import logging
    import warnings

    from training.config import TrackingConfig

    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        train(tokens, tmp_path / "model", tiny_train(max_steps=4, checkpoint_every=2, val_every=2), nano,
              TrackingConfig(enabled=False))
    log = capfd.readouterr().err + caplog.text + "\n".join(str(w.message) for w in caught)
    assert "train: step 4/4 (100%)" in log
    for noise in ("Tip:", "weights_only", "LeafSpec"):
        assert noise not in log, log
    assert len(list((tmp_path / "model.checkpoints").glob("step-*.ckpt"))) == 2
