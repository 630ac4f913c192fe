"""Fine-tuning runs in a real MLflow store: one run naming base and data, the loss curves, registered
versions with a promotion gate, and bases given as run ids or the champion alias."""

import dataclasses
import json
import subprocess
import sys

from finetune_samples import tiny_finetune, toy_preferences, toy_sft, write_jsonl
from mlflow import MlflowClient

from training.finetune.config import RegistryConfig
from training.finetune.data import file_sha256
from training.finetune.run import finetune


def test_tracked_registered_and_gated(base_dir, tracking, tmp_path):
    data = write_jsonl(tmp_path / "sft.jsonl", toy_sft())
    registry = RegistryConfig(sft=f"sft-{tracking.experiment}", dpo=f"dpo-{tracking.experiment}")
    tracking = dataclasses.replace(tracking, registered_model=registry.sft)  # `champion` names the SFT model
    config = tiny_finetune(max_steps=12, lora={"rank": 0}, lr=1e-2, registry=registry, out=str(tmp_path / "ft"))
    first = finetune("sft", data, str(base_dir), tmp_path / "sft1", config, tracking)
    client = MlflowClient(tracking.tracking_uri)
    run = client.get_run(first["run_id"])
    assert run.data.tags["finetune.stage"] == "sft" and run.data.tags["base.model"] == str(base_dir)
    assert run.data.tags["data.sha256"] == file_sha256(data) == first["data_sha256"]
    assert run.data.params["finetune.max_steps"] == "12" and run.data.params["finetune.lora.rank"] == "0"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "sft/train_loss")] == list(range(1, 13))
    val = client.get_metric_history(run.info.run_id, "sft/val_loss")
    assert [m.step for m in val] == [0, 10, 12] and val[-1].value == first["val_loss"]
    assert {a.path for a in client.list_artifacts(run.info.run_id, "model")} >= {"model/model.pt", "model/stats.json"}
    assert run.info.status == "FINISHED"
    assert first["registry"]["version"] == 1 and first["registry"]["promoted"]
    assert str(client.get_model_version_by_alias(registry.sft, "champion").version) == "1"

    worse = finetune("sft", data, str(base_dir), tmp_path / "sft2", tiny_finetune(
        max_steps=1, lora={"rank": 0}, registry=registry, out=str(tmp_path / "ft")), tracking)
    assert worse["val_loss"] > first["val_loss"] and not worse["registry"]["promoted"]
    assert str(client.get_model_version_by_alias(registry.sft, "champion").version) == "1"
    assert client.get_run(worse["run_id"]).data.tags["gate.decision"].startswith("kept: val_loss")
    other = write_jsonl(tmp_path / "other.jsonl", toy_sft(30))  # a different held-out set: not comparable
    elsewhere = finetune("sft", other, str(base_dir), tmp_path / "sft3", config, tracking)
    assert not elsewhere["registry"]["promoted"] and "not comparable" in elsewhere["registry"]["reason"]

    # DPO from the SFT run id (artifacts downloaded), then from the champion alias
    prefs = write_jsonl(tmp_path / "prefs.jsonl", toy_preferences(12))
    by_run = finetune("dpo", prefs, first["run_id"], tmp_path / "dpo1", tiny_finetune(
        max_steps=2, registry=registry, out=str(tmp_path / "ft")), tracking)
    tags = client.get_run(by_run["run_id"]).data.tags
    assert tags["base.run_id"] == first["run_id"] and by_run["registry"]["promoted"]
    by_alias = finetune("dpo", prefs, "champion", tmp_path / "dpo2", tiny_finetune(
        max_steps=2, registry=registry, out=str(tmp_path / "ft")), tracking)
    tags = client.get_run(by_alias["run_id"]).data.tags
    assert tags["base.registered"] == registry.sft and tags["base.version"] == "1"
    assert json.loads((tmp_path / "dpo2" / "finetune.json").read_text())["base"]["run_id"] == first["run_id"]


def test_cli_bad_data_is_one_line(base_dir, tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Q", "chosen": "A"}])
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "finetune", "reward", "--data", str(bad),
                             "--base", str(base_dir), "--out", str(tmp_path / "out"),
                             "--set", "finetune.device=cpu", "--set", "tracking.enabled=false"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"tokenmill finetune: error: {bad}:1: missing field 'rejected'"


def test_base_champion_is_the_registered_pretrained_model(base_dir, tracking, tmp_path):
    """`--base champion` through the pre-training registry (training.registry's pyfunc) as it is."""
    from mlflow.entities import RunStatus

    from training import registry
    from training import tracking as mlf

    client = MlflowClient(tracking.tracking_uri)
    run_id = client.create_run(mlf.ensure_experiment(tracking)).info.run_id
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    registry.register(tracking, run_id, base_dir, {"bits_per_byte": 2.0}, "causal", "test-set")
    data = write_jsonl(tmp_path / "sft.jsonl", toy_sft(8))
    stats = finetune("sft", data, "champion", tmp_path / "sft", tiny_finetune(
        max_steps=1, out=str(tmp_path / "ft"), registry=RegistryConfig(enabled=False)), tracking)
    base = json.loads((tmp_path / "sft" / "finetune.json").read_text())["base"]
    assert base["registered"] == tracking.registered_model and base["run_id"] == run_id
    assert stats["base"] == "champion" and stats["held_out_examples"] >= 1
