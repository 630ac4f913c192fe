"""`tokenmill finetune STAGE` (the stages of registry.py: sft, reward, dpo, ppo, grpo): load the base,
grow its vocabulary for the chat template, let the stage train on its JSONL data, measure the policy's
held-out accuracy on the task (task.py), write the model directory atomically, track and register it
in MLflow behind the stage's gate.

Output directory (see model_dir.py for the weights):
  finetune.json       stage, base model, data path and sha256, chat tokens, config
  stats.json          the returned summary (also printed by the CLI)
  history/train.csv, history/val.csv   per-step training figures; held-out figures at step 0, every
                      eval_every steps and at the end
  plots/loss.png      training and held-out loss (the stages that have a loss on both)
  samples.jsonl       ppo, grpo: rollout samples every finetune.rl.sample_every steps
  run.json            MLflow run id (absent when tracking is disabled)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import torch

from tokenmill.locations import without_credentials
from tokenmill.config import to_dict
from tokenmill.errors import UserError
from tokenmill.stage import atomic_directory, check_replaceable, write_json
from training.config import TrackingConfig
from training.finetune import task, track
from training.finetune.config import FinetuneConfig
from training.finetune.data import file_sha256, held_out_digest, split_held_out
from training.finetune.lora import merge_lora
from training.finetune.loop import pick_device
from training.finetune.model_dir import gpt_record, load_policy, save_policy, save_reward
from training.finetune.registry import FinetuneStage, Session, get_stage
from training.finetune.template import CHAT_TOKENS, ChatTemplate, add_chat_tokens, resize_vocab
from training.train import plot_loss


def setting(config: FinetuneConfig, dotted: str):
    """config.<dotted>, e.g. setting(config, "rl.prompts")."""
    for name in dotted.split("."):
        config = getattr(config, name)
    return config


def finetune(stage: str, data: Path | None = None, base: str | None = None, out: Path | None = None,
             config: FinetuneConfig | None = None, tracking: TrackingConfig | None = None,
             merge: bool | None = None, reward_model: str | None = None) -> dict:
    """Run one fine-tuning stage; returns its summary (also written to <out>/stats.json)."""
    spec = get_stage(stage)
    config = config or FinetuneConfig()
    tracking = tracking or TrackingConfig(enabled=False)
    merge = config.merge if merge is None else merge
    data = Path(data or setting(config, spec.data_default))
    base = str(base or setting(config, spec.base_default))
    out = Path(out or Path(config.out) / stage)
    check_replaceable(out, f"finetune-{stage}")  # before hours of training, not after them
    torch.manual_seed(config.seed)
    records = spec.load(data)  # bad data fails before any model loads
    data_sha256 = file_sha256(data)
    base_info, session, eot_id, added = open_base(base, config, tracking, data, reward_model)
    train_items, val_items, eval_set, n_truncated = split(spec, records, session)
    run_id = track.start_run(tracking, stage, config, base_info, data, data_sha256) if tracking.enabled else None
    summary = {"stage": f"finetune-{stage}", "out": out.as_posix(), "base": base_info["model"],
               "data": data.as_posix(), "data_sha256": data_sha256, "eval_set": eval_set,
               "train_examples": len(train_items), "held_out_examples": len(val_items), "truncated": n_truncated}
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
        finish(spec, tracking, config, run_id, out, history, summary)
    return summary


def open_base(base: str, config: FinetuneConfig, tracking: TrackingConfig, data: Path,
              reward_model: str | None) -> tuple[dict, Session, int | None, list[str]]:
    """(base description, the training session, end-of-text id, chat tokens added to the tokenizer)."""
    base_dir, base_info = track.resolve_base(base, config, tracking)
    gpt, tokenizer, eot_id = load_policy(base_dir)
    tokenizer, added = add_chat_tokens(tokenizer)
    first_new = min(tokenizer.token_to_id(t) for t in CHAT_TOKENS)
    gpt = resize_vocab(gpt, max(gpt.vocab_size, tokenizer.get_vocab_size()))
    device = pick_device(config)
    session = Session(gpt.to(device), tokenizer, ChatTemplate(tokenizer, config.system_prompt), first_new, config,
                      device, reward_model, data)
    return base_info, session, eot_id, added


def split(spec: FinetuneStage, records: list, session: Session) -> tuple[list, list, str, int]:
    """(train items, held-out items, the held-out set's digest, how many sequences lost their ending
    to the context)."""
    from tokenmill.errors import UserError

    config, template, block_size = session.config, session.template, session.gpt.config.block_size
    train_records, val_records = split_held_out(records, config.val_fraction, config.seed)
    train_items, val_items = (spec.encode(part, template, block_size) for part in (train_records, val_records))
    if not train_items:
        raise UserError(f"{session.data}: every example fell into the held-out split (lower finetune.val_fraction)")
    return train_items, val_items, held_out_digest(val_records), spec.truncated(train_items + val_items, template)


def train(spec: FinetuneStage, session: Session, train_items: list, val_items: list, merge: bool,
          summary: dict) -> tuple[dict, torch.nn.Module]:
    """Train, measure the task accuracy of a policy before and after, fill `summary`; (history, model)."""
    config = session.config
    before = None if spec.writes_reward else accuracy(session, session.gpt)
    history, extra, model = spec.train(session, train_items, val_items)
    if not spec.writes_reward:
        extra.update(accuracy(session, model))
        extra["held_out_accuracy_before"] = before["held_out_accuracy"]
        if config.lora.rank and merge:
            merge_lora(model)
    summary.update({"steps": config.max_steps, "train_loss": history["train"][-1]["loss"],
                    "lora_rank": config.lora.rank, "merged": not keeps_adapter(spec, config, merge), **extra})
    return history, model


def keeps_adapter(spec: FinetuneStage, config: FinetuneConfig, merge: bool) -> bool:
    """A LoRA policy not merged is written as base + adapter; a reward model is always written whole."""
    return bool(config.lora.rank) and not merge and not spec.writes_reward


def accuracy(session: Session, policy) -> dict:
    return task.accuracy(policy, session.template, session.config.task, session.device)


def write_outputs(out: Path, spec: FinetuneStage, session: Session, model, history: dict, summary: dict,
                  eot_id: int | None, base_state: dict | None, meta: dict, tracking: TrackingConfig) -> None:
    with atomic_directory(out) as tmp:
        if spec.writes_reward:
            if session.config.lora.rank:
                merge_lora(model)
            save_reward(tmp, model, session.tokenizer)
        else:
            lora = session.config.lora if base_state is not None else None
            save_policy(tmp, model, session.tokenizer, eot_id, summary["steps"], base_state, lora, session.first_new)
        write_json(tmp / "finetune.json", meta)
        for split_name in ("train", "val"):
            _write_csv(tmp / "history" / f"{split_name}.csv", history[split_name])
        if all("loss" in r for split_name in ("train", "val") for r in history[split_name]):
            plot_loss(history, tmp / "plots" / "loss.png")
        if history.get("samples"):
            (tmp / "samples.jsonl").write_text("".join(json.dumps(s, ensure_ascii=False) + "\n"
                                                       for s in history["samples"]), encoding="utf-8")
        if summary["run_id"]:
            write_json(tmp / "run.json", {"run_id": summary["run_id"], "experiment": tracking.experiment,
                                          "tracking_uri": tracking.tracking_uri})
        write_json(tmp / "stats.json", summary)


def finish(spec: FinetuneStage, tracking: TrackingConfig, config: FinetuneConfig, run_id: str, out: Path,
           history: dict, summary: dict) -> None:
    """Per-step figures to the run, the registered version behind the stage's gate, the artifacts."""
    track.log_history(tracking, run_id, spec.name, history)
    if config.registry.enabled:
        metric = spec.gate[0]
        summary["registry"] = track.register(tracking, config, spec.name, run_id, float(summary[metric]),
                                             summary["data_sha256"], summary["eval_set"], spec.gate,
                                             spec.refusal(summary, config))
    track.finish_run(tracking, run_id, out, summary)


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
