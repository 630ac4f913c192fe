"""Helpers for the fine-tuning tests: a tiny base model directory, JSONL writers, toy data sets."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from training.config import ModelConfig, TokenizeConfig
from training.finetune.config import DpoConfig, FinetuneConfig, LoraConfig, TaskConfig
from training.finetune.model_dir import gpt_record
from training.model import GPT
from training.tokenizer import train_tokenizer

TEXTS = [
    "Install the package with apt and check the log files.", "The firewall drops packets that match no rule.",
    "Backups are useful only when a restore has been tested.", "yes good right correct fine",
    "no bad wrong broken awful",
    "بسته‌ها با ابزاری ساده نصب می‌شوند.", "Pliki konfiguracyjne są w katalogu etc.",
]
TINY = ModelConfig(preset=None, n_layer=2, n_head=2, n_embd=32, block_size=64)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


def make_base(directory: Path, seed: int = 0) -> Path:
    tokenizer = train_tokenizer(iter(TEXTS * 3), TokenizeConfig(vocab_size=320, min_frequency=1))
    torch.manual_seed(seed)
    gpt = GPT(TINY, tokenizer.get_vocab_size())
    directory.mkdir(parents=True)
    torch.save(gpt_record(gpt, tokenizer.token_to_id("<|endoftext|>")), directory / "model.pt")
    tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def tiny_finetune(**overrides) -> FinetuneConfig:
    lora = overrides.pop("lora", {})
    values = dict(max_steps=20, batch_size=4, lr=3e-3, min_lr=3e-4, warmup_steps=2, eval_every=10,
                  val_fraction=0.25, device="cpu", lora=LoraConfig(**{"rank": 4, "dropout": 0.0, **lora}),
                  task=TaskConfig(held_out=None),  # the arithmetic task only where a test asks for it
                  dpo=DpoConfig(reward_model=None))  # not the checkout's models/finetune/reward, if one was trained
    return FinetuneConfig(**{**values, **overrides})


# Separable preferences: the chosen answer always says yes/good/right, the rejected one no/bad/wrong.
GOOD = ["yes", "good", "right", "correct", "fine"]
BAD = ["no", "bad", "wrong", "broken", "awful"]


def toy_preferences(n: int = 40) -> list[dict]:
    prompts = ["Is the backup tested?", "Does the firewall work?", "Czy pakiet działa?", "آیا بسته نصب شد؟"]
    return [{"prompt": f"{prompts[i % 4]} ({i})",
             "chosen": f"{GOOD[i % 5]} {GOOD[(i + 2) % 5]}", "rejected": f"{BAD[i % 5]} {BAD[(i + 3) % 5]}"}
            for i in range(n)]


def toy_sft(n: int = 24) -> list[dict]:
    return [{"prompt": f"What does step {i} do?", "response": "Install the package with apt."} for i in range(n)]


def brevity(response: str, answer: str) -> float:
    """A verifiable toy reward (named in tests as finetune_samples:brevity): shorter answers score more."""
    return max(0.0, 1.0 - len(response) / 40)


def toy_prompts(n: int = 24) -> list[dict]:
    return [{"prompt": f"Is step {i} done?", "answer": "yes"} for i in range(n)]


def tiny_rl(**overrides) -> FinetuneConfig:
    """tiny_finetune with a few short rollout steps (finetune.rl, ppo, grpo)."""
    from training.finetune.config import GrpoConfig, PpoConfig, RlConfig

    rl = RlConfig(**{"steps": 12, "lr": 1e-2, "max_new_tokens": 8, "epochs": 2, "minibatch_size": 16,
                     "kl_coef": 0.01, "sample_every": 5, **overrides.pop("rl", {})})
    grpo = GrpoConfig(**{"reward": "finetune_samples:brevity", "prompts_per_step": 4, "group_size": 4,
                         **overrides.pop("grpo", {})})
    ppo = PpoConfig(**{"prompts_per_step": 16, **overrides.pop("ppo", {})})
    return tiny_finetune(rl=rl, ppo=ppo, grpo=grpo, eval_every=6, warmup_steps=1,
                         **{"lora": {"rank": 0}, **overrides})
