"""Train stage: a Lightning fit over the token memmaps, resumable, tracked in MLflow (rank 0 only).

Output directory (replaced atomically, written by rank 0):
  model.pt            {"state_dict", "model_config", "vocab_size", "eot_id", "step"}: see load_model
  tokenizer.json      copy of the tokenizer the tokens were made with
  config.json         train and model config, tokens path, fingerprint
  stats.json          steps, tokens seen, parameters, last train/val loss, tokens/s, MLflow run id
  history/train.csv   step, loss, lr, tokens_per_s        history/val.csv  step, loss
  plots/loss.png      train and validation loss
  run.json            MLflow run id, experiment id, tracking uri (absent when tracking is disabled)
Checkpoints live beside it in `<out>.checkpoints/` (DVC deletes a stage's outputs before a rerun).

Multi-device: Lightning's DDP launcher re-runs the calling command in every rank, so launch training
as its own process: `tokenmill train` (what dvc.yaml and the Prefect flow do).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import shutil
import sys
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.utilities import rank_zero_only

from tokenmill.config import build, flatten, to_dict
from tokenmill.errors import UserError
from tokenmill.stage import atomic_directory, write_json
from training import tracking as mlf
from training.config import ModelConfig, TrackingConfig, TrainConfig
from training.data import TokenDataModule
from training.model import GPT
from training.module import GPTModule
from training.tokenizer import read_meta

LAST_CHECKPOINT = "last.ckpt"
# Fields that change what is logged, not the weights: changing them keeps a checkpoint resumable.
NOT_FINGERPRINTED = ("log_every", "val_every", "val_batches", "checkpoint_every", "num_workers")


class StepProgressBar(TQDMProgressBar):
    """The bar counts towards max_steps' micro-batches (the training stream itself is endless)."""

    @property
    def total_train_batches(self):
        return self.trainer.max_steps * self.trainer.accumulate_grad_batches


def fingerprint(config: TrainConfig, model: ModelConfig, tokens: Path) -> str:
    """What a checkpoint must match to be resumed: train + model config and the tokens' meta.json."""
    train = {k: v for k, v in to_dict(config).items() if k not in NOT_FINGERPRINTED}
    meta = (Path(tokens) / "meta.json").read_text(encoding="utf-8")
    blob = json.dumps({"train": train, "model": to_dict(model), "tokens_meta": meta}, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def resumable(checkpoints: Path, fp: str) -> tuple[Path | None, str | None]:
    """(last checkpoint, its MLflow run id) if one exists with fingerprint `fp`, else (None, None)."""
    path = checkpoints / LAST_CHECKPOINT
    if not path.is_file():
        return None, None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=False, mmap=True).get("tokenmill", {})
    except Exception:  # a truncated or foreign file: start fresh
        return None, None
    if stored.get("fingerprint") != fp:
        return None, None
    return path, stored.get("mlflow_run_id")


def train(tokens: Path, out: Path, config: TrainConfig, model: ModelConfig, tracking: TrackingConfig,
          checkpoints: Path | None = None) -> dict:
    """Train a GPT on tokens/train.bin; write `out` (see module doc). Returns a summary (rank 0)."""
    tokens, out = Path(tokens), Path(out)
    checkpoints = Path(checkpoints) if checkpoints else out.with_name(out.name + ".checkpoints")
    meta = read_meta(tokens)
    fp = fingerprint(config, model, tokens)
    corpus = Path(meta["corpus"]) if meta.get("corpus") else None
    resume_from, run_id = resumable(checkpoints, fp)
    if resume_from is None and rank_zero_only.rank == 0:
        for stale in checkpoints.glob("*.ckpt"):  # another config's checkpoints: start afresh
            stale.unlink()

    L.seed_everything(config.seed, workers=True, verbose=False)
    module = GPTModule(model, config, meta["vocab_size"], fp)
    data = TokenDataModule(tokens, model.block_size, config.batch_size, config.accumulate_grad_batches,
                           config.seed, config.val_batches, config.num_workers)
    logger = None
    if tracking.enabled and rank_zero_only.rank == 0:
        run_id = mlf.existing_run(tracking, run_id)
        logger = mlf.make_logger(tracking, run_id)
        module.mlflow_run_id = logger.run_id
        if run_id is None:  # a new run: say what it is and which data it saw, once
            logger.log_hyperparams(flatten({"train": config, "model": model,
                                            "tokens": {"path": tokens.as_posix(), **meta}}))
            if corpus is not None and corpus.exists():
                mlf.log_corpus_input(tracking, logger.run_id, corpus)

    trainer = L.Trainer(
        accelerator=config.accelerator,
        devices=int(config.devices) if str(config.devices).lstrip("-").isdigit() else config.devices,
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        precision=config.precision,
        max_steps=config.max_steps,
        accumulate_grad_batches=config.accumulate_grad_batches,
        gradient_clip_val=config.grad_clip or None,
        val_check_interval=config.val_every * config.accumulate_grad_batches,  # counted in micro-batches
        check_val_every_n_epoch=None,
        limit_val_batches=config.val_batches,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # TokenDataModule shards by rank itself
        logger=logger if logger is not None else False,
        callbacks=[
            ModelCheckpoint(dirpath=checkpoints, every_n_train_steps=config.checkpoint_every, save_top_k=0,
                            save_last=True, enable_version_counter=False),
            StepProgressBar(),
        ],
        enable_model_summary=False,
        default_root_dir=checkpoints,
    )
    with contextlib.redirect_stdout(sys.stderr):  # Lightning's bars print to stdout; stdout is for results
        trainer.fit(module, datamodule=data, ckpt_path=resume_from)
    if not trainer.is_global_zero:
        return {"rank": trainer.global_rank}
    train_history, val_history = module.history["train"], module.history["val"]
    summary = {
        "stage": "train",
        "out": out.as_posix(),
        "steps": trainer.global_step,
        "tokens_seen": trainer.global_step * data.samples_per_step(trainer.world_size) * model.block_size,
        "resumed_from": str(resume_from) if resume_from else None,
        "parameters": module.model.num_parameters(),
        "train_loss": train_history[-1]["loss"] if train_history else None,
        "val_loss": val_history[-1]["loss"] if val_history else None,
        "tokens_per_s": train_history[-1]["tokens_per_s"] if train_history else None,
        "run_id": logger.run_id if logger is not None else None,
    }
    with atomic_directory(out) as tmp:
        _write_outputs(tmp, module, trainer.global_step, tokens, meta, config, model, fp, logger, tracking)
        write_json(tmp / "stats.json", summary)
    if logger is not None:
        mlf.log_artifacts(tracking, logger.run_id, out, tokens, corpus)
    return summary


def _write_outputs(tmp: Path, module: GPTModule, step: int, tokens: Path, meta: dict, config: TrainConfig,
                   model: ModelConfig, fp: str, logger, tracking: TrackingConfig) -> None:
    torch.save({"state_dict": module.model.state_dict(), "model_config": to_dict(model),
                "vocab_size": meta["vocab_size"], "eot_id": meta.get("eot_id"), "step": step}, tmp / "model.pt")
    if (tokens / "tokenizer.json").is_file():
        shutil.copyfile(tokens / "tokenizer.json", tmp / "tokenizer.json")
    write_json(tmp / "config.json", {"train": to_dict(config), "model": to_dict(model), "tokens": tokens.as_posix(),
                                     "fingerprint": fp, "steps": step})
    _write_csv(tmp / "history" / "train.csv", module.history["train"], ["step", "loss", "lr", "tokens_per_s"])
    _write_csv(tmp / "history" / "val.csv", module.history["val"], ["step", "loss"])
    plot_loss(module.history, tmp / "plots" / "loss.png")
    if logger is not None:
        write_json(tmp / "run.json", {"run_id": logger.run_id, "experiment_id": logger.experiment_id,
                                      "experiment": tracking.experiment, "tracking_uri": tracking.tracking_uri})


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def plot_loss(history: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for split, style in (("train", "-"), ("val", "o-")):
        rows = history[split]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], style, label=f"{split} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def load_model(model_dir: Path, map_location: str | torch.device = "cpu") -> GPT:
    """The trained GPT from model_dir/model.pt, in eval mode (no Lightning needed)."""
    path = Path(model_dir) / "model.pt"
    if not path.is_file():
        raise UserError(f"{path}: not found (run the train stage first)")
    saved = torch.load(path, map_location=map_location, weights_only=True)
    gpt = GPT(build(ModelConfig, saved["model_config"], f"{path}: model_config"), saved["vocab_size"])
    gpt.load_state_dict(saved["state_dict"])
    return gpt.eval()
