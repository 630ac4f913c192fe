"""The LightningModule: GPT + AdamW, linear warmup then cosine decay, loss/lr/throughput logs.

Correct on many devices by construction: every reduced tensor lives on the module's device (NCCL
refuses CPU tensors), all ranks take part in each reduction, and only the logger (global rank 0 has
one) writes to MLflow. The checkpoint carries the data position and every rank's RNG states.
"""

from __future__ import annotations

import math
import time

import lightning as L
import torch
import torch.distributed as dist

from training.checkpoints import rng_states, set_rng_states
from training.config import ModelConfig, TrainConfig
from training.measure import device_peak_flops, flops_per_token
from training.model import GPT
from training.objectives import masking_generator, training_pair


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step `step` (0-based): linear warmup to lr, cosine down to min_lr."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if step >= config.max_steps:
        return config.min_lr
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


class GPTModule(L.LightningModule):
    def __init__(self, model: ModelConfig, train: TrainConfig, vocab_size: int, identity: dict | None = None,
                 mask_id: int | None = None):
        super().__init__()
        self.model_config, self.train_config, self.identity = model, train, identity or {}
        self.vocab_size, self.mask_id = vocab_size, mask_id
        # the only registered submodule: state-dict keys are model.*; bidirectional for the masked objective
        self.model = GPT(model, vocab_size, causal=train.objective == "causal")
        self.history: dict[str, list[dict]] = {"train": [], "val": []}
        self.mlflow_run_id: str | None = None  # stored in checkpoints so a resumed run keeps its MLflow run
        self.samples_seen = 0  # training sequences consumed by all ranks: the data position
        self._resume_rng: list[dict] | None = None
        self._origin: tuple[int, int] | None = None  # (samples_seen, global_step) when this fit started
        self._loss_sum: torch.Tensor | None = None
        self._batches, self._seen_step = 0, 0
        self._val_sum: torch.Tensor | None = None
        self._val_count: torch.Tensor | None = None
        self._val_started = 0.0
        self._clock: tuple[float, int] | None = None
        self._flops_per_token = flops_per_token(self.model.num_parameters(), self.model.wpe.weight.numel(),
                                                model.n_layer, model.n_head, model.n_embd, model.block_size)
        self._peak_flops: float | None = None

    def configure_model(self) -> None:
        from lightning.pytorch.strategies import ModelParallelStrategy

        if isinstance(self.trainer.strategy, ModelParallelStrategy) and not getattr(self, "_sharded", False):
            from training.strategies import shard_fsdp2

            shard_fsdp2(self.model, self.device_mesh["data_parallel"])
            self._sharded = True

    def configure_optimizers(self):
        c = self.train_config
        # fused AdamW: one kernel per step on CUDA instead of a loop over tensors
        optimizer = torch.optim.AdamW(self.model.param_groups(c.weight_decay), lr=c.lr, betas=c.betas,
                                      fused=self.device.type == "cuda")
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, c) / c.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def samples_per_step(self) -> int:
        c = self.train_config
        return c.batch_size * c.accumulate_grad_batches * self.trainer.world_size

    def on_fit_start(self) -> None:
        if self.train_config.compile:
            self.model.compile()  # in place: no second module in the state dict, keys unchanged
        _, self._peak_flops = device_peak_flops(self.device)

    def pair(self, batch, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) under train.objective; masks are a pure function of (seed, stream, rank)."""
        c = self.train_config
        if c.objective == "causal":
            return batch[0], batch[1]
        return training_pair(batch[0], batch[1], c.objective, self.mask_id, self.vocab_size, c.mask_rate,
                             masking_generator(c.seed, stream, self.global_rank))

    def training_step(self, batch, batch_idx):
        micro = batch_idx % self.train_config.accumulate_grad_batches
        _, loss = self.model(*self.pair(batch, self.global_step * self.train_config.accumulate_grad_batches + micro))
        detached = loss.detach()
        self._loss_sum = detached if self._loss_sum is None else self._loss_sum + detached
        self._batches += 1
        return loss

    def on_train_start(self) -> None:
        if self._resume_rng:  # restored last, just before the first batch, as the uninterrupted run had them
            states = self._resume_rng
            set_rng_states(states[self.global_rank] if len(states) == self.trainer.world_size else states[0])
            self._resume_rng = None
        self._seen_step = self.global_step
        self._clock = (time.perf_counter(), self.global_step)
        self._origin = (self.samples_seen, self.global_step)

    def data_position(self) -> int:
        """Training sequences consumed by all ranks up to the current optimizer step. Derived from the step
        (callbacks such as the checkpoint saver run before this module's on_train_batch_end)."""
        samples, step = self._origin if self._origin is not None else (self.samples_seen, self.global_step)
        return samples + (self.global_step - step) * self.samples_per_step()

    def on_train_end(self) -> None:
        self.samples_seen = self.data_position()

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.end_of_step()

    def end_of_step(self) -> None:
        """Log the optimizer step that just ended (once; a no-op mid-accumulation). Callbacks run before
        this module's on_train_batch_end, so the checkpoint saver calls it first: the step's record is in
        the checkpoint."""
        step = self.global_step
        if step == self._seen_step:
            return  # mid-accumulation: the optimizer has not stepped yet
        self._seen_step = step
        if step % self.train_config.log_every and step != self.trainer.max_steps:
            return
        mean = self._loss_sum / self._batches  # a tensor on this device, reduced by every rank
        loss = self.trainer.strategy.reduce(mean, reduce_op="mean")
        self._loss_sum, self._batches = None, 0
        now = time.perf_counter()
        then, then_step = self._clock
        self._clock = (now, step)
        tokens_per_s = (step - then_step) * self.samples_per_step() * self.model_config.block_size / max(now - then,
                                                                                                         1e-9)
        per_device = tokens_per_s / self.trainer.world_size
        record = {"step": step, "loss": float(loss), "lr": lr_at(step - 1, self.train_config),
                  "tokens_per_s": tokens_per_s, "tokens_per_s_per_device": per_device}
        if self._peak_flops:
            record["mfu"] = per_device * self._flops_per_token / self._peak_flops
        if self.trainer.is_global_zero:
            self.history["train"].append(record)
        self._log_metrics({f"train/{k}": v for k, v in record.items() if k != "step"}, step)

    def validation_step(self, batch, batch_idx):
        _, loss = self.model(*self.pair(batch, -1 - batch_idx))  # the same masks at every check
        n = batch[0].size(0)
        if self._val_sum is None:
            self._val_sum = torch.zeros((), device=self.device, dtype=torch.float32)
            self._val_count = torch.zeros((), device=self.device, dtype=torch.float32)
        self._val_sum += loss.detach().float() * n
        self._val_count += n

    def on_validation_epoch_start(self) -> None:
        self._val_started = time.perf_counter()
        self._val_sum = torch.zeros((), device=self.device, dtype=torch.float32)
        self._val_count = torch.zeros((), device=self.device, dtype=torch.float32)

    def on_validation_epoch_end(self) -> None:
        total = self.trainer.strategy.reduce(self._val_sum, reduce_op="sum")  # every rank, on its device
        count = self.trainer.strategy.reduce(self._val_count, reduce_op="sum")
        self._val_sum = self._val_count = None
        if self._clock is not None:  # tokens/s counts training time only: move the clock past validation
            self._clock = (self._clock[0] + time.perf_counter() - self._val_started, self._clock[1])
        if self.trainer.sanity_checking or float(count) == 0:
            return
        record = {"step": self.global_step, "loss": float(total / count)}
        if self.trainer.is_global_zero:
            self.history["val"].append(record)
        self._log_metrics({"val/loss": record["loss"]}, self.global_step)

    def _log_metrics(self, metrics: dict, step: int) -> None:
        if self.logger is not None:  # only global rank 0 is given a logger (training/train.py)
            self.logger.log_metrics(metrics, step=step)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["tokenmill"] = {"identity": self.identity, "mlflow_run_id": self.mlflow_run_id,
                                   "history": self.history, "samples_seen": self.data_position(),
                                   "rng": self._all_rng_states(), "cpu_threads": torch.get_num_threads()}

    def _all_rng_states(self) -> list[dict]:
        """Every rank's RNG states, in rank order (all ranks call this while a checkpoint is dumped)."""
        mine = rng_states()
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return [mine]
        gathered: list = [None] * dist.get_world_size()
        dist.all_gather_object(gathered, mine)
        return gathered

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        info = checkpoint.get("tokenmill", {})
        self.history = info.get("history", {"train": [], "val": []})
        self.mlflow_run_id = info.get("mlflow_run_id")
        self.samples_seen = info.get("samples_seen", 0)
        self._resume_rng = info.get("rng")
