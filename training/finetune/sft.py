"""Supervised fine-tuning: next-token cross-entropy on response tokens only (data.lm_batch masks
prompts, turn markers and padding out of the targets)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from training.finetune.data import IGNORE, Encoded, encode_sft, lm_batch, load_sft, truncated
from training.finetune.lora import trainable
from training.finetune.loop import fit
from training.finetune.registry import FinetuneStage, Session, register_stage


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


@register_stage
class SftStage(FinetuneStage):
    """Chat-template SFT: response-token cross-entropy; judged by the held-out response loss."""
    name, help = "sft", "supervised fine-tuning on prompt/response or chat JSONL (finetune.sft_data)"
    data_default, base_default, gate = "sft_data", "base", ("val_loss", False)

    def load(self, path: Path) -> list:
        return load_sft(path)

    def encode(self, records: list, template, block_size: int) -> list:
        return encode_sft(records, template, block_size)

    def truncated(self, items: list, template) -> int:
        return truncated(items, template)

    def train(self, session: Session, train_items: list, val_items: list):
        gpt, config, device, pad = session.gpt, session.config, session.device, session.template.end_id
        history = fit(gpt, trainable(gpt, config, session.first_new), train_items,
                      lambda rows: batch_loss(gpt, rows, pad, device),
                      lambda: held_out_loss(gpt, val_items, pad, device, config.batch_size),
                      config, device, "finetune sft")
        return history, {"val_loss": history["val"][-1]["loss"], "val_loss_before": history["val"][0]["loss"]}, gpt
