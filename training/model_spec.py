"""What a model SPEC names and how it loads: a model directory, a Lightning checkpoint, an MLflow run id
(or runs:/<id>) or a registered model (models:/<name>/<version>, models:/<name>@<alias>). Evaluation,
export, generation, serving and the harness adapter all take a SPEC; checkpoints load with
weights_only=True (training.checkpoints.load_checkpoint)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from tokenmill.errors import UserError
from tokenmill.locations import without_credentials
from training import tracking as mlf
from training.checkpoints import load_checkpoint
from training.config import TrackingConfig
from training.model import GPT

RUN_ID_LENGTH = 32


def pick_device(requested: str = "auto") -> torch.device:
    """The accelerator training would use: cuda if available, else mps, else cpu (or what was asked)."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@dataclass
class LoadedModel:
    model: GPT
    tokenizer_file: Path | None  # the tokenizer the model was trained with, when known
    run_id: str | None  # the MLflow run to log to, when known
    source: str  # what was loaded, for messages
    model_dir: Path | None = None  # a model directory (model.pt + tokenizer.json): what the registry logs


def load_for_evaluation(source: str | Path, tracking: TrackingConfig, device: torch.device | str,
                        workdir: Path) -> LoadedModel:
    """A model from a model directory, a Lightning checkpoint, an MLflow run id or a registered model."""
    text = str(source)
    if text.startswith("models:/"):
        from training.registry import model_uri_run_id

        return _from_run(model_uri_run_id(tracking, text), tracking, device, workdir, text)
    if text.startswith("runs:/") or (len(text) == RUN_ID_LENGTH and not Path(text).exists()
                                     and all(c in "0123456789abcdef" for c in text)):
        return _from_run(text.removeprefix("runs:/").strip("/").split("/")[0], tracking, device, workdir, text)
    path = Path(text)
    if path.is_file() and path.suffix == ".ckpt":
        return LoadedModel(_from_checkpoint(path, device), None, _checkpoint_run_id(path), text)
    if path.is_dir():
        record = _load_record(path / "model.pt", device)
        run_file = path / "run.json"
        run_id = json.loads(run_file.read_text(encoding="utf-8"))["run_id"] if run_file.is_file() else None
        tokenizer_file = path / "tokenizer.json"
        return LoadedModel(GPT.from_record(record, str(path / "model.pt")).to(device),
                           tokenizer_file if tokenizer_file.is_file() else None, run_id, text, path)
    raise UserError(f"{text}: not a model directory, a .ckpt checkpoint, an MLflow run id or models:/ URI")


def _load_record(path: Path, device) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: not found (run the train stage first)")
    try:
        return load_checkpoint(path, map_location=device)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable model file ({str(exc).splitlines()[0][:160]})") from None


def _from_checkpoint(path: Path, device) -> GPT:
    try:
        checkpoint = load_checkpoint(path, map_location=device)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0][:160]})") from None
    identity = (checkpoint.get("tokenmill") or {}).get("identity")
    if not identity:
        raise UserError(f"{path}: checkpoint without a tokenmill run identity (written by an older tokenmill)")
    state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    record = {"model_config": identity["model"], "vocab_size": identity["tokenizer"]["vocab_size"],
              "state_dict": state, "objective": identity.get("train", {}).get("objective", "causal")}
    return GPT.from_record(record, str(path)).to(device)


def _checkpoint_run_id(path: Path) -> str | None:
    try:
        return (load_checkpoint(path, mmap=True).get("tokenmill") or {}).get(
            "mlflow_run_id")
    except Exception:
        return None


def _from_run(run_id: str, tracking: TrackingConfig, device, workdir: Path, source: str) -> LoadedModel:
    if mlf.existing_run(tracking, run_id) is None:
        raise UserError(f"{source}: no such MLflow run in {without_credentials(tracking.tracking_uri)}")
    client = mlf.client(tracking)
    names = {a.path for a in client.list_artifacts(run_id)}
    if "model.pt" not in names:
        raise UserError(f"{source}: MLflow run {run_id} has no model.pt artifact (did its training finish?)")
    for name in ("model.pt", "tokenizer.json"):
        if name in names:
            client.download_artifacts(run_id, name, str(workdir))
    record = _load_record(workdir / "model.pt", device)
    tokenizer_file = workdir / "tokenizer.json"
    return LoadedModel(GPT.from_record(record, f"{source}: model.pt").to(device),
                       tokenizer_file if tokenizer_file.is_file() else None, run_id, source)
