"""`tokenmill finetune sft|reward|dpo`: load the base, grow its vocabulary for the chat template, train
on the JSONL data, write the model directory atomically, track and register it in MLflow.

Output directory (see model_dir.py for the weights):
  finetune.json       stage, base model, data path and sha256, chat tokens, config
  stats.json          the returned summary (also printed by the CLI)
  history/train.csv, history/val.csv   per-step training figures; held-out figures at step 0, every
                      eval_every steps and at the end
  plots/loss.png      training and held-out loss
  run.json            MLflow run id (absent when tracking is disabled)
"""

from __future__ import annotations

import copy
import csv
import sys
from pathlib import Path

import torch

from tokenmill.locations import without_credentials
from tokenmill.config import to_dict
from tokenmill.errors import UserError
from tokenmill.stage import atomic_directory, check_replaceable, write_json
from training.config import TrackingConfig
from training.finetune import dpo, reward, sft, track
from training.finetune.config import STAGES, FinetuneConfig
from training.finetune.data import (encode_pairs, encode_sft, file_sha256, held_out_digest, load_preferences,
                                    load_sft, split_held_out, truncated)
from training.finetune.lora import apply_lora, lora_parameters, merge_lora
from training.finetune.loop import fit, pick_device
from training.finetune.model_dir import gpt_record, load_policy, load_reward, save_policy, save_reward
from training.finetune.template import CHAT_TOKENS, ChatTemplate, add_chat_tokens, resize_vocab
from training.model import GPT
from training.train import plot_loss


def trainable(gpt: GPT, config: FinetuneConfig, first_new: int) -> list[dict]:
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


def finetune(stage: str, data: Path | None = None, base: str | None = None, out: Path | None = None,
             config: FinetuneConfig | None = None, tracking: TrackingConfig | None = None,
             merge: bool | None = None, reward_model: str | None = None) -> dict:
    """Run one fine-tuning stage; returns its summary (also written to <out>/stats.json)."""
    if stage not in STAGES:
        raise UserError(f"unknown fine-tuning stage '{stage}' (known: {', '.join(STAGES)})")
    config = config or FinetuneConfig()
    tracking = tracking or TrackingConfig(enabled=False)
    merge = config.merge if merge is None else merge
    data = Path(data or (config.sft_data if stage == "sft" else config.preference_data))
    base = str(base or (config.base if stage == "sft" else config.sft_model))
    out = Path(out or Path(config.out) / stage)
    check_replaceable(out, f"finetune-{stage}")  # before hours of training, not after them
    torch.manual_seed(config.seed)
    records = load_sft(data) if stage == "sft" else load_preferences(data)  # bad data fails before any model loads
    data_sha256 = file_sha256(data)

    base_dir, base_info = track.resolve_base(base, config, tracking)
    gpt, tokenizer, eot_id = load_policy(base_dir)
    tokenizer, added = add_chat_tokens(tokenizer)
    first_new = min(tokenizer.token_to_id(t) for t in CHAT_TOKENS)
    gpt = resize_vocab(gpt, max(gpt.vocab_size, tokenizer.get_vocab_size()))
    template = ChatTemplate(tokenizer, config.system_prompt)
    block_size = gpt.config.block_size
    device = pick_device(config)

    train_records, val_records = split_held_out(records, config.val_fraction, config.seed)
    eval_set = held_out_digest(val_records)
    if stage == "sft":
        train_items, val_items = (encode_sft(part, template, block_size) for part in (train_records, val_records))
        n_truncated = truncated(train_items + val_items, template)
    else:
        train_items, val_items = (encode_pairs(part, template, block_size) for part in (train_records, val_records))
        n_truncated = sum(truncated(list(p), template) for p in train_items + val_items)
    if not train_items:
        raise UserError(f"{data}: every example fell into the held-out split (lower finetune.val_fraction)")

    run_id = track.start_run(tracking, stage, config, base_info, data, data_sha256) if tracking.enabled else None
    gpt.to(device)
    base_state = gpt_record(gpt, eot_id) if config.lora.rank and not merge and stage != "reward" else None
    try:
        history, extra, model = _train(stage, gpt, train_items, val_items, template, config, reward_model,
                                       tokenizer, first_new, device)
        if stage != "reward" and config.lora.rank and merge:
            merge_lora(gpt)
        summary = {
            "stage": f"finetune-{stage}", "out": out.as_posix(), "base": base_info["model"],
            "data": data.as_posix(), "data_sha256": data_sha256, "eval_set": eval_set,
            "train_examples": len(train_items), "held_out_examples": len(val_items), "truncated": n_truncated,
            "steps": config.max_steps, "train_loss": history["train"][-1]["loss"],
            "lora_rank": config.lora.rank, "merged": bool(config.lora.rank == 0 or merge or stage == "reward"),
            **extra, "run_id": run_id,
        }
        with atomic_directory(out, f"finetune-{stage}") as tmp:
            if stage == "reward":
                if config.lora.rank:
                    merge_lora(gpt)  # a reward model is always saved whole
                save_reward(tmp, model, tokenizer)
            else:
                lora = config.lora if base_state is not None else None
                save_policy(tmp, gpt, tokenizer, eot_id, config.max_steps, base_state, lora, first_new)
            write_json(tmp / "finetune.json", {
                "stage": stage, "base": base_info, "data": {"path": data.as_posix(), "sha256": data_sha256},
                "chat_tokens": {t: tokenizer.token_to_id(t) for t in CHAT_TOKENS}, "added_tokens": added,
                "config": to_dict(config)})
            for split, rows in history.items():
                _write_csv(tmp / "history" / f"{split}.csv", rows)
            plot_loss(history, tmp / "plots" / "loss.png")
            if run_id:
                write_json(tmp / "run.json", {"run_id": run_id, "experiment": tracking.experiment,
                                              "tracking_uri": without_credentials(tracking.tracking_uri)})
            write_json(tmp / "stats.json", summary)
    except BaseException:
        if run_id:
            track.fail_run(tracking, run_id)
        raise
    if run_id:
        track.log_history(tracking, run_id, stage, history)
        if config.registry.enabled:
            metric = track.GATE_METRIC[stage][0]
            summary["registry"] = track.register(tracking, config, stage, run_id, float(summary[metric]),
                                                 data_sha256, eval_set)
        track.finish_run(tracking, run_id, out, summary)
    return summary


def _train(stage: str, gpt: GPT, train_items: list, val_items: list, template: ChatTemplate,
           config: FinetuneConfig, reward_model: str | None, tokenizer, first_new: int, device: torch.device):
    """(history, summary figures, the trained module) of one stage."""
    pad = template.end_id
    if stage == "sft":
        groups = trainable(gpt, config, first_new)
        history = fit(gpt, groups, train_items, lambda rows: sft.batch_loss(gpt, rows, pad, device),
                      lambda: sft.held_out_loss(gpt, val_items, pad, device, config.batch_size),
                      config, device, "finetune sft")
        final = history["val"][-1]
        extra = {"val_loss": final["loss"], "val_loss_before": history["val"][0]["loss"]}
    elif stage == "reward":
        model = reward.RewardModel(gpt).to(device)
        groups = trainable(gpt, config, first_new) + [{"params": list(model.head.parameters()),
                                                                "weight_decay": 0.0}]
        history = fit(model, groups, train_items, lambda b: reward.batch_loss(model, b, pad, device),
                      lambda: reward.held_out_accuracy(model, val_items, pad, device, config.batch_size),
                      config, device, "finetune reward")
        final = history["val"][-1]
        extra = {"val_accuracy": final["accuracy"], "val_accuracy_before": history["val"][0]["accuracy"],
                 "val_margin": final["margin"], "held_out_pairs": final["pairs"]}
    else:
        reference = copy.deepcopy(gpt).eval().requires_grad_(False)
        groups = trainable(gpt, config, first_new)
        beta = config.dpo.beta
        history = fit(gpt, groups, train_items,
                      lambda b: dpo.batch_loss(gpt, reference, b, pad, beta, device),
                      lambda: dpo.held_out_margins(gpt, reference, val_items, pad, beta, device, config.batch_size),
                      config, device, "finetune dpo")
        final = history["val"][-1]
        extra = {"val_margin": final["margin"], "val_margin_before": history["val"][0]["margin"],
                 "val_accuracy": final["accuracy"], "held_out_pairs": final["pairs"]}
        extra.update(_win_rate(gpt, reference, val_items, template, config, reward_model, tokenizer, device))
    return history, extra, (model if stage == "reward" else gpt)



def _win_rate(policy, reference, val_items, template, config: FinetuneConfig, reward_model: str | None,
              tokenizer, device) -> dict:
    """Held-out win rate of the policy over the reference, judged by the reward model (if there is one)."""
    judge = reward_model or config.dpo.reward_model
    if not judge or not (Path(judge) / "reward.pt").is_file():
        print(f"finetune dpo: no reward model at {judge}; win rate not measured", file=sys.stderr)
        return {"win_rate": None}
    judge_model, judge_tokenizer = load_reward(Path(judge))
    if judge_tokenizer.get_vocab(with_added_tokens=True) != tokenizer.get_vocab(with_added_tokens=True):
        raise UserError(f"{judge}: the reward model's tokenizer differs from the policy's")
    prompts = list({tuple(c.ids[: c.mask.index(1)]): None for c, _ in val_items})
    if not prompts:
        return {"win_rate": None}
    policy.eval()
    result = dpo.win_rate(policy, reference, judge_model.to(device), [list(p) for p in prompts], template,
                          config.dpo.max_new_tokens, device)
    return {"win_rate": result["win_rate"], "win_rate_prompts": result["prompts"],
            "policy_reward": result["policy_reward"], "reference_reward": result["reference_reward"],
            "reward_model": str(judge)}


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
