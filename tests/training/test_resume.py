"""Never lose a run: exact resume after SIGKILL/SIGTERM (dropout on), torn checkpoints, extended runs,
another run's checkpoints set aside rather than deleted."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from tokenmill.config import to_dict
from training.config import ModelConfig, TrackingConfig
from training.module import GPTModule
from training.train import train

NO_TRACKING = TrackingConfig(enabled=False)


@pytest.fixture(scope="module")
def dropout_model() -> ModelConfig:
    return ModelConfig(preset="tiny", dropout=0.1)


def weights(model_dir: Path) -> dict:
    return torch.load(model_dir / "model.pt", weights_only=True)["state_dict"]


def assert_bitwise_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} of {len(a)} tensors differ, e.g. {different[:3]}"


def cli_command(tmp_path: Path, tokens: Path, model: ModelConfig, train_values: dict) -> list[str]:
    params = {"model": to_dict(model), "train": train_values, "tracking": {"enabled": False}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return [sys.executable, "-m", "pipeline.cli", "train", "--params", str(tmp_path / "params.yaml"),
            "--tokens", str(tokens), "--out", str(tmp_path / "model"), "--checkpoints", str(tmp_path / "ckpt")]


def run_until_checkpoint(command: list[str], checkpoint: Path, sig: int, cwd: Path,
                         delay: float = 0.0) -> tuple[int, str]:
    """Start `command`, send `sig` `delay` seconds after `checkpoint` exists; return its exit code and stderr."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + 180
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay)
    if proc.poll() is None:
        os.kill(proc.pid, sig)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


@pytest.fixture(scope="module")
def uninterrupted(tokens, dropout_model, tmp_path_factory):
    """The reference: 40 steps with dropout 0.1 in one go."""
    out = tmp_path_factory.mktemp("uninterrupted")
    train(tokens, out / "model", tiny(), dropout_model, NO_TRACKING, checkpoints=out / "ckpt")
    return out


def tiny(**overrides):
    from tests.training.conftest import _tiny_train

    return _tiny_train(**{"max_steps": 40, "checkpoint_every": 4, "val_every": 10, **overrides})


def train_values(**overrides) -> dict:
    return {k: v for k, v in to_dict(tiny(**overrides)).items()}


@pytest.mark.parametrize(("sig", "after", "delay"), [
    (signal.SIGKILL, 4, 0.0),  # right after the first checkpoint
    pytest.param(signal.SIGKILL, 20, 0.0, marks=pytest.mark.slow),  # right after the one saved after validation
    pytest.param(signal.SIGKILL, 8, 0.03, marks=pytest.mark.slow),  # a step or two after a checkpoint, before the next
    pytest.param(signal.SIGTERM, 4, 0.0, marks=pytest.mark.slow)], ids=["SIGKILL", "SIGKILL-20", "SIGKILL-late",
                                                                        "SIGTERM"])
def test_killed_training_rerun_with_the_same_command_ends_bitwise_equal(sig, after, delay, tokens, dropout_model,
                                                                         uninterrupted, tmp_path):
    command = cli_command(tmp_path, tokens, dropout_model, train_values())
    code, stderr = run_until_checkpoint(command, tmp_path / "ckpt" / f"step-{after:08d}.ckpt", sig, tmp_path, delay)
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL
    else:  # saved where it stopped, said so on one line, exited with a retryable code
        assert code == 75, stderr[-2000:]
        (line,) = [l for l in stderr.splitlines() if "SIGTERM" in l and "tokenmill train" in l]
        assert "run the same command to continue" in line
    assert not (tmp_path / "model").exists()
    saved = sorted(p.name for p in (tmp_path / "ckpt").glob("step-*.ckpt"))
    assert saved and saved[-1] != "step-00000040.ckpt"

    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed_from=" in again.stdout and "resumed_from=None" not in again.stdout
    assert_bitwise_equal(weights(uninterrupted / "model"), weights(tmp_path / "model"))


def test_thread_count_is_the_machines_and_a_resume_keeps_its_checkpoints(tokens, dropout_model, uninterrupted,
                                                                          tmp_path, monkeypatch):
    """CPU kernels split their sums by thread count (it changes every weight's last bits): neither an earlier
    torch.set_num_threads in the process nor another OMP_NUM_THREADS at the rerun may change the run."""
    before = torch.get_num_threads()
    other = 1 if before > 1 else 2
    try:
        torch.set_num_threads(other)  # left by an earlier caller: a fresh run does not inherit it
        train(tokens, tmp_path / "fresh", tiny(keep_checkpoints=10), dropout_model, NO_TRACKING,
              checkpoints=tmp_path / "all")
        assert torch.get_num_threads() == other  # and gets it back
        assert_bitwise_equal(weights(uninterrupted / "model"), weights(tmp_path / "fresh"))
        (tmp_path / "ckpt").mkdir()
        shutil.copy(tmp_path / "all" / "step-00000004.ckpt", tmp_path / "ckpt")
        monkeypatch.setenv("OMP_NUM_THREADS", str(other))  # the rerun's shell differs: the checkpoint's count wins
        result = train(tokens, tmp_path / "model", tiny(), dropout_model, NO_TRACKING, checkpoints=tmp_path / "ckpt")
    finally:
        torch.set_num_threads(before)
    assert result["resumed_from"] == str(tmp_path / "ckpt" / "step-00000004.ckpt")
    assert_bitwise_equal(weights(uninterrupted / "model"), weights(tmp_path / "model"))


def test_torn_newest_checkpoint_falls_back_to_the_one_before(tokens, dropout_model, uninterrupted, tmp_path):
    ckpt = tmp_path / "ckpt"
    train(tokens, tmp_path / "first", tiny(), dropout_model, NO_TRACKING, checkpoints=ckpt)
    assert sorted(p.name for p in ckpt.iterdir()) == ["step-00000036.ckpt", "step-00000040.ckpt"]  # keep 2
    newest = ckpt / "step-00000040.ckpt"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # copied half-way, disk full, ...
    (ckpt / ".step-00000044.ckpt.tmp-999").write_bytes(b"PK")  # a save killed before its rename

    result = train(tokens, tmp_path / "model", tiny(), dropout_model, NO_TRACKING, checkpoints=ckpt)
    assert result["resumed_from"] == str(ckpt / "step-00000036.ckpt") and result["steps"] == 40
    assert (ckpt / "step-00000040.ckpt.torn").is_file()  # kept, not deleted
    assert not list(ckpt.glob(".*.tmp-*"))
    assert_bitwise_equal(weights(uninterrupted / "model"), weights(tmp_path / "model"))


def test_raising_max_steps_extends_the_run_and_keeps_its_mlflow_run(tokens, nano, tracking, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = train(tokens, tmp_path / "a", tiny(max_steps=8), nano, tracking, checkpoints=ckpt)
    again = train(tokens, tmp_path / "a", tiny(max_steps=8), nano, tracking, checkpoints=ckpt)
    assert again["resumed_from"] == str(ckpt / "step-00000008.ckpt") and again["steps"] == 8  # nothing left to do
    longer = train(tokens, tmp_path / "b", tiny(max_steps=12, log_every=4), nano, tracking, checkpoints=ckpt)
    assert longer["resumed_from"] == str(ckpt / "step-00000008.ckpt") and longer["steps"] == 12
    assert longer["run_id"] == first["run_id"]  # the same MLflow run goes on
    assert longer["tokens_seen"] == 12 * 4 * 32
    assert [r.split(",")[0] for r in (tmp_path / "b" / "history" / "train.csv").read_text().splitlines()[1:]] == [
        "2", "4", "6", "8", "12"]


def test_another_model_shape_sets_old_checkpoints_aside(tokens, nano, tmp_path, capfd):
    ckpt = tmp_path / "ckpt"
    train(tokens, tmp_path / "a", tiny(max_steps=4), nano, NO_TRACKING, checkpoints=ckpt)
    wider = ModelConfig(preset="tiny", n_layer=3)
    result = train(tokens, tmp_path / "b", tiny(max_steps=4), wider, NO_TRACKING, checkpoints=ckpt)
    assert result["resumed_from"] is None
    (aside,) = (ckpt / "aside").iterdir()
    assert [p.name for p in aside.glob("*.ckpt")] == ["step-00000004.ckpt"]
    assert "model.n_layer: 2 -> 3" in (aside / "reasons.txt").read_text()
    (line,) = [l for l in capfd.readouterr().err.splitlines() if "moved to" in l]
    assert "another model shape or tokenizer" in line and "model.n_layer: 2 -> 3" in line and str(aside) in line
    changed_lr = train(tokens, tmp_path / "c", tiny(max_steps=4, lr=1e-3), wider, NO_TRACKING, checkpoints=ckpt)
    assert changed_lr["resumed_from"] is None and len(list((ckpt / "aside").iterdir())) == 2


def test_the_model_is_registered_once_in_the_module_state_dict(nano, tiny_train):
    module = GPTModule(nano, tiny_train(compile=False), vocab_size=512)
    keys = list(module.state_dict())
    assert keys and all(k.startswith("model.") for k in keys)
    assert len(keys) == len(module.model.state_dict())
