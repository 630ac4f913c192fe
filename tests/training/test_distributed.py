"""Two CPU processes (gloo): FSDP2 shards the model and still saves the whole of it; a sharded run resumes.

(Lightning's FSDP1 strategy, train.strategy=fsdp, needs CUDA: torch's FSDP1 refuses CPU devices. DDP with
two processes is tested in test_train.py with MLflow.)"""

import os
import subprocess
import sys

import pytest
import torch
import yaml

from training.config import ModelConfig, TrackingConfig
from training.train import load_model, train


def run_cli(tmp_path, tokens, *overrides: str) -> subprocess.CompletedProcess:
    params = {"model": {"preset": "tiny"},
              "train": {"batch_size": 4, "max_steps": 6, "warmup_steps": 1, "lr": 3e-3, "min_lr": 3e-4,
                        "log_every": 2, "val_every": 3,
                        "val_batches": 2, "checkpoint_every": 3, "accelerator": "cpu", "devices": 2,
                        "strategy": "fsdp2"},
              "tracking": {"enabled": False}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    command = [sys.executable, "-m", "pipeline.cli", "train", "--params", str(tmp_path / "params.yaml"),
               "--tokens", str(tokens), "--out", str(tmp_path / "model"), "--checkpoints", str(tmp_path / "ckpt")]
    for override in overrides:
        command += ["--set", override]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_fsdp2_on_two_processes_saves_the_whole_model_and_resumes(tokens, tiny_train, tmp_path):
    proc = run_cli(tmp_path, tokens)
    assert "Starting with 2 processes" in proc.stderr or "world_size=2" in proc.stderr.replace(" ", "")
    sharded = load_model(tmp_path / "model").state_dict()

    # One process with the batch of both ranks sees the same samples per step: the same training.
    single = train(tokens, tmp_path / "single", tiny_train(batch_size=8, max_steps=6, warmup_steps=1, val_every=3,
                                                           checkpoint_every=3),
                   ModelConfig(preset="tiny"), TrackingConfig(enabled=False), checkpoints=tmp_path / "single-ckpt")
    reference = torch.load(tmp_path / "single" / "model.pt", weights_only=True)["state_dict"]
    assert sharded.keys() == reference.keys()
    assert all(torch.allclose(sharded[k], reference[k], atol=1e-5) for k in reference)
    assert single["steps"] == 6

    extended = run_cli(tmp_path, tokens, "train.max_steps=8")  # every rank loads the full checkpoint
    assert "resumed_from=" in extended.stdout and "step-00000006.ckpt" in extended.stdout
    assert torch.load(tmp_path / "model" / "model.pt", weights_only=True)["step"] == 8
