"""LoRA (Hu et al., 2021): a frozen Linear W plus a trained low-rank update (alpha / r) * B @ A.

`apply_lora` swaps the targeted Linear layers of a GPT for LoRALinear and freezes everything else;
`merge_lora` folds each update into its weight and swaps plain Linear layers back, so the result is
a GPT of the base architecture whose outputs equal the adapted model's (dropout aside).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.finetune.config import FinetuneConfig, LoraConfig


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float):
        super().__init__()
        self.base, self.scale = base, alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, device=base.weight.device))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, device=base.weight.device))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))  # B = 0: training starts at the base model
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + F.linear(F.linear(self.dropout(x), self.lora_a), self.lora_b) * self.scale

    def merged(self) -> nn.Linear:
        linear = nn.Linear(self.base.in_features, self.base.out_features, bias=self.base.bias is not None,
                           device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + (self.lora_b @ self.lora_a) * self.scale)
            if self.base.bias is not None:
                linear.bias.copy_(self.base.bias)
        for name in ("residual",):  # keep markers the model's init reads
            if hasattr(self.base, name):
                setattr(linear, name, getattr(self.base, name))
        return linear


def _targets(model: nn.Module, targets: list[str]) -> list[str]:
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Linear) and any(name == t or name.endswith("." + t) for t in targets)]


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def apply_lora(model: nn.Module, config: LoraConfig, seed: int = 0) -> list[str]:
    """Wrap the targeted Linear layers in place, freeze every other parameter; returns their names."""
    names = _targets(model, config.targets)
    if not names:
        raise ValueError(f"no Linear layer matches lora.targets {config.targets}")
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for name in names:
            _swap(model, name, LoRALinear(model.get_submodule(name), config.rank, config.alpha, config.dropout))
    return names


def lora_parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p for name, p in model.named_parameters() if name.rsplit(".", 1)[-1] in ("lora_a", "lora_b")}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRALinear into a plain Linear, in place; returns the model."""
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRALinear):
            _swap(model, name, m.merged())
    return model


def trainable(gpt: nn.Module, config: FinetuneConfig, first_new: int) -> list[dict]:
    """AdamW groups. Full fine-tuning: every weight (GPT.param_groups). LoRA: the adapters only, plus
    (lora.train_new_tokens) the embedding rows of the added chat tokens, whose gradient is masked to
    those rows so that every base id keeps its vector."""
    if config.lora.rank == 0:
        return gpt.param_groups(config.weight_decay)
    apply_lora(gpt, config.lora, seed=config.seed)
    groups = [{"params": list(lora_parameters(gpt).values()), "weight_decay": config.weight_decay}]
    if config.lora.train_new_tokens and first_new < gpt.vocab_size:
        embedding = gpt.wte.weight
        rows = torch.zeros(embedding.size(0), 1, device=embedding.device, dtype=embedding.dtype)
        rows[first_new:] = 1.0
        embedding.requires_grad_(True)
        embedding.register_hook(lambda grad: grad * rows)
        groups.append({"params": [embedding], "weight_decay": 0.0})  # decay would move the frozen rows
    return groups
