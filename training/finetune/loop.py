"""One plain PyTorch training loop for the three stages (single device): AdamW, linear warmup then
cosine decay, gradient clipping, a held-out evaluation before training, every `eval_every` steps
and at the end. Batches are drawn from a seeded permutation of the examples, epoch after epoch."""

from __future__ import annotations

import contextlib
import math
from typing import Callable

import torch

from tokenmill.progress import progress
from training.finetune.config import FinetuneConfig


def lr_at(step: int, config: FinetuneConfig) -> float:
    """Learning rate of optimizer step `step` (0-based)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress_ = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_))) * (config.lr - config.min_lr)


def pick_device(config: FinetuneConfig) -> torch.device:
    if config.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(config.device)


def autocast(config: FinetuneConfig, device: torch.device):
    if config.precision == "bf16-mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def batches(n: int, batch_size: int, seed: int):
    """Endless lists of indices: a fresh seeded permutation each epoch."""
    generator = torch.Generator().manual_seed(seed)
    pending: list[int] = []
    while True:
        while len(pending) < batch_size:
            pending += torch.randperm(n, generator=generator).tolist()
        yield pending[:batch_size]
        pending = pending[batch_size:]


def fit(model: torch.nn.Module, groups: list[dict], items: list, loss_fn: Callable[[list], tuple[torch.Tensor, dict]],
        evaluate: Callable[[], dict], config: FinetuneConfig, device: torch.device, desc: str) -> dict:
    """Train `model` for config.max_steps steps; returns {"train": [...], "val": [...]} per-step records.

    `loss_fn(batch_items)` returns (loss, extra figures); `evaluate()` the held-out figures."""
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95),
                                  fused=device.type == "cuda" or None)
    trained = [p for g in groups for p in g["params"]]
    history: dict[str, list[dict]] = {"train": [], "val": []}

    def held_out(step: int) -> None:
        model.eval()
        with torch.no_grad(), autocast(config, device):
            history["val"].append({"step": step, **evaluate()})

    held_out(0)
    order = batches(len(items), min(config.batch_size, len(items)), config.seed)
    bar = progress(range(1, config.max_steps + 1), desc=desc, unit="step")
    for step in bar:
        lr = lr_at(step - 1, config)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)  # a group may move faster (the reward's likelihood weight)
        model.train()
        with autocast(config, device):
            loss, extra = loss_fn([items[i] for i in next(order)])
        loss.backward()
        loss = float(loss.detach())
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(trained, config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history["train"].append({"step": step, "loss": loss, "lr": lr, **extra})
        if step % config.eval_every == 0 or step == config.max_steps:
            held_out(step)
            bar.set_postfix(loss=f"{loss:.4f}")
    return history
