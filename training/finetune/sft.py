"""Supervised fine-tuning: next-token cross-entropy on response tokens only (data.lm_batch masks
prompts, turn markers and padding out of the targets)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.finetune.data import IGNORE, Encoded, lm_batch


def response_loss(model, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy in nats over the target positions that are not IGNORE."""
    logits, _ = model(x)
    return F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE, reduction=reduction)


def batch_loss(model, rows: list[Encoded], pad_id: int, device: torch.device) -> tuple[torch.Tensor, dict]:
    x, y = (t.to(device) for t in lm_batch(rows, pad_id))
    return response_loss(model, x, y), {"response_tokens": int((y != IGNORE).sum())}


@torch.no_grad()
def held_out_loss(model, rows: list[Encoded], pad_id: int, device: torch.device, batch_size: int) -> dict:
    """Mean response-token loss over the held-out examples (every response token weighs the same)."""
    nats, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        x, y = (t.to(device) for t in lm_batch(rows[start:start + batch_size], pad_id))
        nats += float(response_loss(model, x, y, reduction="sum"))
        tokens += int((y != IGNORE).sum())
    return {"loss": nats / tokens if tokens else float("nan"), "response_tokens": tokens}
