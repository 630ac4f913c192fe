"""The one list of fine-tuning stages: each stage is a class in its own module that registers itself
with `@register_stage`, as dataprep's steps do (dataprep/registry.py).

A stage says what it reads (`load`: records with one-line errors; `encode`: templated ids), how it
trains (`train`: the per-step history, its summary figures and the trained module), what it is judged
by (`gate`: the summary figure the registry compares and whether higher is better; `refusal`: a bound
that figure's run must also meet) and what it writes (a policy, or a reward model). `run.finetune`,
the CLI's choices, the registry names and `tokenmill finetune --help` all read this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # importing this module stays cheap: the CLI reads STAGE_MODULES before any torch import
    import torch
    from tokenizers import Tokenizer

    from training.finetune.config import FinetuneConfig
    from training.finetune.template import ChatTemplate
    from training.model import GPT

STAGE_MODULES = ("sft", "reward", "dpo", "ppo", "grpo")  # modules of training.finetune, in pipeline order


@dataclass
class Session:
    """What every stage trains with: the base grown for the chat tokens, on its device."""
    gpt: GPT
    tokenizer: Tokenizer
    template: ChatTemplate
    first_new: int  # the first id the chat template added (LoRA trains those embedding rows)
    config: FinetuneConfig
    device: torch.device
    reward_model: str | None  # --reward-model
    data: Path


class FinetuneStage:
    name: ClassVar[str] = ""
    help: ClassVar[str] = ""  # one line for --help
    data_default: ClassVar[str] = "preference_data"  # the FinetuneConfig field giving the default --data
    base_default: ClassVar[str] = "sft_model"  # the FinetuneConfig field giving the default --base
    gate: ClassVar[tuple[str, bool]] = ("", True)  # (summary figure the registry compares, higher is better)
    writes_reward: ClassVar[bool] = False  # a reward model (reward.pt), not a policy

    def load(self, path: Path) -> list:
        raise NotImplementedError

    def encode(self, records: list, template: ChatTemplate, block_size: int) -> list:
        raise NotImplementedError

    def truncated(self, items: list, template: ChatTemplate) -> int:
        return 0

    def train(self, session: Session, train_items: list, val_items: list) -> tuple[dict, dict, torch.nn.Module]:
        """(history {"train": [...], "val": [...]}, summary figures, the trained module)."""
        raise NotImplementedError

    def refusal(self, summary: dict, config: FinetuneConfig) -> str | None:
        """Why this run may not become the champion whatever its gate figure (None: it may)."""
        return None


_STAGES: dict[str, type[FinetuneStage]] = {}


def register_stage(cls: type[FinetuneStage]) -> type[FinetuneStage]:
    """Class decorator: make `cls` the stage `cls.name`."""
    if cls.name in _STAGES and _STAGES[cls.name] is not cls:
        raise ValueError(f"fine-tuning stage {cls.name!r} registered twice")
    _STAGES[cls.name] = cls
    return cls


def stages() -> dict[str, type[FinetuneStage]]:
    """Every stage, in pipeline order."""
    for module in STAGE_MODULES:
        importlib.import_module(f"training.finetune.{module}")
    return {name: _STAGES[name] for name in STAGE_MODULES if name in _STAGES}


def get_stage(name: str) -> FinetuneStage:
    from tokenmill.errors import UserError

    known = stages()
    if name not in known:
        raise UserError(f"unknown fine-tuning stage '{name}' (known: {', '.join(known)})")
    return known[name]()


def describe() -> str:
    """One line per stage for --help."""
    return "\n".join(f"  {name:<7} {cls.help}" for name, cls in stages().items())
