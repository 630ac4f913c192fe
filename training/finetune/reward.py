"""Reward model: the GPT trunk with its language-model head replaced by a scalar head read at the
last token (the <|end|> closing the answer), trained with the pairwise Bradley–Terry loss
-log sigmoid(r(chosen) - r(rejected)). With finetune.reward.likelihood, the score also weighs the
answer's log-likelihood under the trunk's own (tied) language-model head, a weight learnt from 0."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.finetune.data import Encoded, encode_pairs, last_token_batch, load_preferences, truncated
from training.finetune.lora import trainable
from training.finetune.loop import fit
from training.finetune.registry import FinetuneStage, Session, register_stage
from training.model import GPT


class RewardModel(nn.Module):
    """Score = a linear head on the final hidden state at the last token; with `likelihood`, plus a
    learnt weight (starting at 0, so the start is the plain head's) times the answer's mean per-token
    log-likelihood under the trunk's own language-model head (the tied embedding: at the start, the
    SFT model's). The likelihood is read on the rows' mask (the answer's tokens)."""

    def __init__(self, gpt: GPT, likelihood: bool = False):
        super().__init__()
        gpt.lm_head = nn.Identity()  # the trunk now returns final hidden states (B, T, n_embd)
        self.gpt, self.config, self.vocab_size, self.likelihood = gpt, gpt.config, gpt.vocab_size, likelihood
        self.head = nn.Linear(gpt.config.n_embd, 1)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)
        if likelihood:
            self.likelihood_weight = nn.Parameter(torch.zeros(()))

    def forward(self, ids: torch.Tensor, last: torch.Tensor, mask: torch.Tensor | None = None,
                with_likelihood: bool = False):
        """Scores (B,); with `with_likelihood`, (scores, the answers' mean log-likelihood (B,))."""
        hidden, _ = self.gpt(ids)
        score = self.head(hidden[torch.arange(ids.size(0), device=ids.device), last]).squeeze(-1).float()
        if not self.likelihood:
            return (score, None) if with_likelihood else score
        logits = (hidden[:, :-1] @ self.gpt.wte.weight.T).float()  # the tied language-model head
        logps = torch.gather(F.log_softmax(logits, dim=-1), 2, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
        targets = mask[:, 1:].float()
        likelihood = (logps * targets).sum(1) / targets.sum(1).clamp(min=1)
        score = score + self.likelihood_weight * likelihood
        return (score, likelihood) if with_likelihood else score

    def score(self, rows: list[Encoded], pad_id: int, device: torch.device, with_likelihood: bool = False):
        ids, last = last_token_batch(rows, pad_id, self.config.block_size)
        mask = torch.zeros_like(ids)
        for i, row in enumerate(rows):
            mask[i, : min(len(row.mask), ids.size(1))] = torch.tensor(row.mask[: ids.size(1)], dtype=torch.long)
        return self(ids.to(device), last.to(device), mask.to(device), with_likelihood)


def bradley_terry_loss(chosen: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    return -F.logsigmoid(chosen - rejected).mean()


def batch_loss(model: RewardModel, pairs: list[tuple[Encoded, Encoded]], pad_id: int,
               device: torch.device, sft_weight: float = 0.0) -> tuple[torch.Tensor, dict]:
    """Bradley–Terry loss; with `sft_weight` (and the likelihood score), plus that weight times the chosen
    answers' mean NLL under the trunk's LM head: the pairs' right answers keep teaching the trunk the
    task, so the likelihood the score reads knows the facts the pairs show (BT alone only moves the
    difference between the two answers)."""
    rewards, likelihood = model.score([c for c, _ in pairs] + [r for _, r in pairs], pad_id, device,
                                      with_likelihood=True)
    chosen, rejected = rewards.chunk(2)
    loss = bradley_terry_loss(chosen, rejected)
    extra = {"accuracy": float((chosen > rejected).float().mean())}
    if sft_weight and likelihood is not None:
        nll = -likelihood[: len(pairs)].mean()
        loss = loss + sft_weight * nll
        extra["chosen_nll"] = float(nll.detach())
    return loss, extra


@torch.no_grad()
def held_out_accuracy(model: RewardModel, pairs: list[tuple[Encoded, Encoded]], pad_id: int, device: torch.device,
                      batch_size: int) -> dict:
    """Pairwise accuracy (chosen scored strictly above rejected), mean margin and loss on held-out pairs."""
    chosen, rejected = [], []
    for start in range(0, len(pairs), batch_size):
        part = pairs[start:start + batch_size]
        rewards = model.score([c for c, _ in part] + [r for _, r in part], pad_id, device)
        c, r = rewards.chunk(2)
        chosen.append(c)
        rejected.append(r)
    if not chosen:
        return {"accuracy": float("nan"), "margin": float("nan"), "loss": float("nan"), "pairs": 0}
    chosen, rejected = torch.cat(chosen), torch.cat(rejected)
    return {"accuracy": float((chosen > rejected).float().mean()), "margin": float((chosen - rejected).mean()),
            "loss": float(bradley_terry_loss(chosen, rejected)), "pairs": len(pairs)}


class PairStage(FinetuneStage):
    """A stage trained on preference pairs (finetune.preference_data)."""

    def load(self, path: Path) -> list:
        return load_preferences(path)

    def encode(self, records: list, template, block_size: int) -> list:
        return encode_pairs(records, template, block_size)

    def truncated(self, items: list, template) -> int:
        return sum(truncated(list(pair), template) for pair in items)


@register_stage
class RewardStage(PairStage):
    """Bradley–Terry reward model; judged by its held-out pairwise accuracy (also its held_out_accuracy)."""
    name, help = "reward", "reward model from preference pairs or rankings (finetune.preference_data)"
    base_default, gate, writes_reward = "sft_model", ("val_accuracy", True), True

    def train(self, session: Session, train_items: list, val_items: list):
        config, device, pad = session.config, session.device, session.template.end_id
        model = RewardModel(session.gpt, config.reward.likelihood).to(device)
        groups = trainable(session.gpt, config, session.first_new) + [
            {"params": list(model.head.parameters()), "weight_decay": 0.0}]
        if model.likelihood:  # one scalar from 0 to a few units: at 100x the rate, within a short run
            groups.append({"params": [model.likelihood_weight], "weight_decay": 0.0, "lr_scale": 100.0})
        history = fit(model, groups, train_items, lambda b: batch_loss(model, b, pad, device, config.reward.sft_weight),
                      lambda: held_out_accuracy(model, val_items, pad, device, config.batch_size),
                      config, device, "finetune reward")
        final = history["val"][-1]
        return history, {"val_accuracy": final["accuracy"], "val_accuracy_before": history["val"][0]["accuracy"],
                         "val_margin": final["margin"], "held_out_pairs": final["pairs"],
                         "held_out_accuracy": final["accuracy"]}, model
