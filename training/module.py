"""The LightningModule: GPT + AdamW, linear warmup then cosine decay, loss/lr/tokens-per-second logs."""

from __future__ import annotations

import math
import time

import lightning as L
import torch

from training.config import ModelConfig, TrainConfig
from training.model import GPT


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup to lr, cosine down to min_lr."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if step >= config.max_steps:
        return config.min_lr
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


class GPTModule(L.LightningModule):
    def __init__(self, model: ModelConfig, train: TrainConfig, vocab_size: int, fingerprint: str = ""):
        super().__init__()
        self.model_config, self.train_config, self.fingerprint = model, train, fingerprint
        self.model = GPT(model, vocab_size)
        self.forward_fn = torch.compile(self.model) if train.compile else self.model
        self.history: dict[str, list[dict]] = {"train": [], "val": []}
        self.mlflow_run_id: str | None = None  # stored in checkpoints so a resumed run keeps its MLflow run
        self._loss_sum, self._batches, self._seen_step = 0.0, 0, 0
        self._val_sum, self._val_count, self._val_started = 0.0, 0, 0.0
        self._clock: tuple[float, int] | None = None

    def configure_optimizers(self):
        optimizer = self.model.configure_optimizers(self.train_config.weight_decay, self.train_config.lr,
                                                    self.train_config.betas)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_at(step, self.train_config) / self.train_config.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def tokens_per_step(self) -> int:
        c = self.train_config
        return c.batch_size * c.accumulate_grad_batches * self.model_config.block_size * self.trainer.world_size

    def training_step(self, batch, batch_idx):
        _, loss = self.forward_fn(*batch)
        self._loss_sum += loss.detach()
        self._batches += 1
        return loss

    def on_train_start(self) -> None:
        self._seen_step = self.global_step
        self._clock = (time.perf_counter(), self.global_step)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        step = self.global_step
        if step == self._seen_step:
            return  # mid-accumulation: the optimizer has not stepped yet
        self._seen_step = step
        if step % self.train_config.log_every and step != self.trainer.max_steps:
            return
        loss = self.trainer.strategy.reduce(self._loss_sum / self._batches, reduce_op="mean")
        self._loss_sum, self._batches = 0.0, 0
        now = time.perf_counter()
        then, then_step = self._clock
        self._clock = (now, step)
        record = {"step": step, "loss": float(loss), "lr": lr_at(step - 1, self.train_config),
                  "tokens_per_s": (step - then_step) * self.tokens_per_step() / max(now - then, 1e-9)}
        if self.trainer.is_global_zero:
            self.history["train"].append(record)
        self._log_metrics({f"train/{k}": v for k, v in record.items() if k != "step"}, step)
        self.log("loss", record["loss"], prog_bar=True, logger=False, rank_zero_only=True)

    def validation_step(self, batch, batch_idx):
        _, loss = self.model(*batch)
        self._val_sum += loss.detach() * batch[0].size(0)
        self._val_count += batch[0].size(0)

    def on_validation_epoch_end(self) -> None:
        total = self.trainer.strategy.reduce(torch.as_tensor(self._val_sum, dtype=torch.float64), reduce_op="sum")
        count = self.trainer.strategy.reduce(torch.as_tensor(self._val_count, dtype=torch.float64), reduce_op="sum")
        self._val_sum, self._val_count = 0.0, 0
        if self.trainer.sanity_checking or count == 0:
            return
        record = {"step": self.global_step, "loss": float(total / count)}
        if self.trainer.is_global_zero:
            self.history["val"].append(record)
        self._log_metrics({"val/loss": record["loss"]}, self.global_step)
        self.log("val_loss", record["loss"], prog_bar=True, logger=False, sync_dist=True)  # same on every rank
        if self._clock is not None:  # tokens/s counts training time only: move the clock past validation
            self._clock = (self._clock[0] + time.perf_counter() - self._val_started, self._clock[1])

    def on_validation_epoch_start(self) -> None:
        self._val_started = time.perf_counter()

    def _log_metrics(self, metrics: dict, step: int) -> None:
        if self.logger is not None:
            self.logger.log_metrics(metrics, step=step)  # rank-zero-only in Lightning's loggers

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tokenmill"] = {"fingerprint": self.fingerprint, "mlflow_run_id": self.mlflow_run_id,
                                   "history": self.history}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.history = checkpoint.get("tokenmill", {}).get("history", {"train": [], "val": []})
