"""Lightning callbacks of the train stage: step checkpoints (periodic, final, on SIGTERM) and progress."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, TQDMProgressBar

from tokenmill.progress import format_duration
from training.checkpoints import checkpoint_path, prune


class StepCheckpoints(Callback):
    """Save step-N.ckpt every `every` optimizer steps, at the end of training and on SIGTERM; keep the
    newest `keep`. Every rank calls save (FSDP gathers the full state from all of them); rank 0 writes."""

    def __init__(self, directory: Path, every: int, keep: int, val_every: int | None = None):
        self.directory, self.every, self.keep, self.val_every = Path(directory), every, keep, val_every
        self._seen_step, self._saved_step, self._after_validation = -1, -1, -1
        self.interrupted_at: int | None = None  # the step saved because of SIGTERM

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._seen_step = trainer.global_step
        self._saved_step = trainer.global_step if trainer.global_step > 0 else -1  # resumed: its checkpoint

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step == self._seen_step:
            return  # mid-accumulation
        self._seen_step = step
        if hasattr(pl_module, "end_of_step"):
            pl_module.end_of_step()  # the step's logs belong in its checkpoint
        stop = trainer.received_sigterm
        if trainer.world_size > 1:  # all ranks agree on the step at which to save and stop
            stop = trainer.strategy.reduce_boolean_decision(stop, all=False)
        if stop or step % self.every == 0:
            if not stop and self.val_every and step % self.val_every == 0:
                self._after_validation = step  # validation of this step comes next: save with its result
            else:
                self.save(trainer)
        if stop:
            self.interrupted_at = step
            trainer.should_stop = True

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._after_validation == trainer.global_step != self._saved_step:
            self.save(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step != self._saved_step:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> Path:
        path = checkpoint_path(self.directory, trainer.global_step)
        trainer.save_checkpoint(path, weights_only=False)  # the whole state: optimizer, loops, callbacks (resume)
        self._saved_step = trainer.global_step
        if trainer.is_global_zero:
            prune(self.directory, self.keep)
        return path

    @property
    def saved_any(self) -> bool:
        return self._saved_step >= 0

    @property
    def last_path(self) -> Path:
        return checkpoint_path(self.directory, self._saved_step)


class StepProgressBar(TQDMProgressBar):
    """In a terminal: a bar counting towards max_steps' micro-batches (the training stream is endless)."""

    @property
    def total_train_batches(self):
        return self.trainer.max_steps * self.trainer.accumulate_grad_batches


class StepProgressLines(Callback):
    """When stderr is not a terminal: one line every `every_s` seconds and at the end, instead of a
    redrawn bar (a redraw becomes one log entry in files and in Prefect):
    `train: step 120/1000 (12%), loss 3.2104, 10,240 tokens/s, elapsed 0:40, ETA 4:53`."""

    def __init__(self, every_s: float, file=None):
        self.every_s, self.file = every_s, file or sys.stderr
        self._start = self._last = 0.0
        self._start_step = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = self._last = time.monotonic()
        self._start_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if trainer.is_global_zero and now - self._last >= self.every_s:
            self._last = now
            self._print(trainer, pl_module, now)

    def on_validation_end(self, trainer, pl_module) -> None:
        val = pl_module.history["val"]
        if trainer.is_global_zero and not trainer.sanity_checking and val:
            print(f"train: step {val[-1]['step']}, val loss {val[-1]['loss']:.4f}", file=self.file, flush=True)

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self._print(trainer, pl_module, time.monotonic(), done=True)

    def _print(self, trainer, pl_module, now: float, done: bool = False) -> None:
        step, total = trainer.global_step, trainer.max_steps
        elapsed = now - self._start
        parts = [f"train: step {step}/{total} ({step / max(total, 1):.0%})"]
        train = pl_module.history["train"]
        if train:
            parts += [f"loss {train[-1]['loss']:.4f}", f"{train[-1]['tokens_per_s']:,.0f} tokens/s"]
        parts.append(f"elapsed {format_duration(elapsed)}")
        done_steps = step - self._start_step
        if not done and done_steps > 0:
            parts.append(f"ETA {format_duration(elapsed / done_steps * (total - step))}")
        print(", ".join(parts) + (" (done)" if done else ""), file=self.file, flush=True)
