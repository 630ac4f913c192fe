"""Fine-tuned model directories.

  model.pt        a plain GPT in training.train's format (read by training.train.load_model): SFT or
                  DPO, fully fine-tuned or LoRA merged (--merge)
  base.pt         LoRA not merged: the base GPT (vocabulary grown for the chat tokens), same format
  adapter.pt      LoRA not merged: {"lora": LoraConfig, "state_dict": LoRA A/B, "new_token_rows",
                  "base_vocab_size"}: the only weights training changed
  reward.pt       reward model: {"state_dict", "model_config", "vocab_size", "likelihood"}
  tokenizer.json  the base tokenizer plus the chat tokens
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer

from tokenmill.config import build, to_dict
from tokenmill.errors import UserError
from training.config import ModelConfig
from training.finetune.config import LoraConfig
from training.finetune.lora import apply_lora, lora_parameters, merge_lora
from training.model import GPT
from training.tokenizer import load_tokenizer
from training.train import load_model

MODEL, BASE, ADAPTER, REWARD, TOKENIZER = "model.pt", "base.pt", "adapter.pt", "reward.pt", "tokenizer.json"


def gpt_record(model: GPT, eot_id: int | None, step: int = 0) -> dict:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}  # a snapshot, not a view
    return {"state_dict": state, "model_config": to_dict(model.config), "vocab_size": model.vocab_size,
            "eot_id": eot_id, "step": step}


def _gpt_from(path: Path, saved: dict) -> GPT:
    gpt = GPT(build(ModelConfig, saved["model_config"], f"{path}: model_config"), saved["vocab_size"])
    gpt.load_state_dict(saved["state_dict"])
    return gpt


def load_policy(model_dir: Path) -> tuple[GPT, Tokenizer, int | None]:
    """(plain GPT in eval mode, tokenizer, end-of-text id) of a pre-trained or fine-tuned directory;
    an unmerged LoRA directory is merged on load."""
    model_dir = Path(model_dir)
    if (model_dir / REWARD).is_file() and not (model_dir / MODEL).is_file():
        raise UserError(f"{model_dir}: a reward model, not a language model")
    tokenizer = load_tokenizer(model_dir / TOKENIZER)
    if (model_dir / MODEL).is_file():
        saved = torch.load(model_dir / MODEL, map_location="cpu", weights_only=True)
        return load_model(model_dir), tokenizer, saved.get("eot_id")
    if not (model_dir / BASE).is_file() or not (model_dir / ADAPTER).is_file():
        raise UserError(f"{model_dir}: no model.pt (nor base.pt + adapter.pt): not a model directory")
    base = torch.load(model_dir / BASE, map_location="cpu", weights_only=True)
    adapter = torch.load(model_dir / ADAPTER, map_location="cpu", weights_only=True)
    gpt = _gpt_from(model_dir / BASE, base)
    with torch.no_grad():
        gpt.wte.weight[adapter["base_vocab_size"]:] = adapter["new_token_rows"]
    apply_lora(gpt, build(LoraConfig, adapter["lora"], f"{model_dir / ADAPTER}: lora"))
    gpt.load_state_dict(adapter["state_dict"], strict=False)
    for p in gpt.parameters():
        p.requires_grad_(True)
    return merge_lora(gpt).eval(), tokenizer, base.get("eot_id")


def save_policy(out: Path, model: GPT, tokenizer: Tokenizer, eot_id: int | None, step: int,
                base_state: dict | None = None, lora: LoraConfig | None = None, base_vocab_size: int = 0) -> None:
    """model.pt for a plain (or merged) model; base.pt + adapter.pt when `base_state` and `lora` are given."""
    tokenizer.save(str(out / TOKENIZER))
    if lora is None:
        torch.save(gpt_record(model, eot_id, step), out / MODEL)
        return
    torch.save({**base_state, "eot_id": eot_id, "step": 0}, out / BASE)
    torch.save({"lora": to_dict(lora), "base_vocab_size": base_vocab_size,
                "new_token_rows": model.wte.weight[base_vocab_size:].detach().cpu().clone(),
                "state_dict": {k: v.detach().cpu() for k, v in lora_parameters(model).items()}}, out / ADAPTER)


def save_reward(out: Path, model, tokenizer: Tokenizer) -> None:
    tokenizer.save(str(out / TOKENIZER))
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "model_config": to_dict(model.config), "vocab_size": model.vocab_size,
                "likelihood": model.likelihood}, out / REWARD)


def load_reward(model_dir: Path):
    from training.finetune.reward import RewardModel

    path = Path(model_dir) / REWARD
    if not path.is_file():
        raise UserError(f"{path}: not found (train one with `tokenmill finetune reward`)")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = RewardModel(GPT(build(ModelConfig, saved["model_config"], f"{path}: model_config"), saved["vocab_size"]),
                        saved.get("likelihood", False))
    model.load_state_dict(saved["state_dict"])
    return model.eval(), load_tokenizer(Path(model_dir) / TOKENIZER)
