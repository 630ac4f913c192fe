"""Benchmark: our Lightning trainer against a plain PyTorch loop on tinyshakespeare, same process.

Character-level tinyshakespeare (90/10 split), the data README's CPU-sized GPT: 4 layers, 4 heads,
128 channels, context 64, batch 12. Both runs use the same model, init seed, samples, AdamW groups,
learning-rate schedule and gradient clipping; tokens/s is measured over the training steps after the
first log interval (warm-up excluded, validation excluded). Published reference: about 1.88
validation loss after 2000 iterations for this configuration.

    .venv/bin/python bench/train.py [--steps 2000] [--data ../shared/data/tinyshakespeare/input.txt]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from tokenmill.stage import write_json
from training.config import ModelConfig, TrackingConfig, TrainConfig
from training.data import FixedWindows, RandomWindows, StridedSampler
from training.model import GPT
from training.module import lr_at
from training.train import train

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare" / "input.txt"


def char_tokens(text_file: Path, out: Path) -> dict:
    """A tokens directory as the tokenize stage writes it, with one token per character."""
    text = text_file.read_text(encoding="utf-8")
    chars = sorted(set(text))
    ids = np.searchsorted(np.array(chars), np.array(list(text))).astype(np.uint16)
    split = int(0.9 * len(ids))
    out.mkdir(parents=True, exist_ok=True)
    ids[:split].tofile(out / "train.bin")
    ids[split:].tofile(out / "val.bin")
    meta = {"corpus": None, "dtype": "uint16", "eot_id": None, "vocab_size": len(chars),
            "train": {"tokens": split}, "val": {"tokens": len(ids) - split}}
    write_json(out / "meta.json", meta)
    return meta


@torch.no_grad()
def val_loss(model: GPT, tokens: Path, block_size: int, batch_size: int, batches: int) -> float:
    model.eval()
    val = np.memmap(tokens / "val.bin", dtype=np.uint16, mode="r")
    loader = DataLoader(FixedWindows(val, block_size, batches * batch_size), batch_size=batch_size)
    losses = [model(x, y)[1].item() for x, y in loader]
    model.train()
    return float(np.mean(losses))


def plain_loop(tokens: Path, meta: dict, config: TrainConfig, model_config: ModelConfig) -> dict:
    """The same training as training.train, written as the textbook loop."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    model = GPT(model_config, meta["vocab_size"])
    optimizer = model.configure_optimizers(config.weight_decay, config.lr, config.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, config) / config.lr)
    dataset = RandomWindows(tokens / "train.bin", "uint16", model_config.block_size, config.seed)
    batches = iter(DataLoader(dataset, batch_size=config.batch_size, sampler=StridedSampler(0, 0, 1)))
    marks, losses = {}, []
    for step in range(1, config.max_steps + 1):
        x, y = next(batches)
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        if step % config.log_every == 0:
            marks[step] = time.perf_counter()
    first, last = min(marks), max(marks)
    tokens_per_step = config.batch_size * model_config.block_size
    return {"tokens_per_s": (last - first) * tokens_per_step / (marks[last] - marks[first]),
            "train_loss": float(np.mean(losses[-config.log_every:])),
            "val_loss": val_loss(model, tokens, model_config.block_size, config.batch_size, config.val_batches)}


def lightning_run(tokens: Path, work: Path, config: TrainConfig, model_config: ModelConfig) -> dict:
    result = train(tokens, work / "model", config, model_config, TrackingConfig(enabled=False),
                   checkpoints=work / "checkpoints")
    rows = [r for r in _read_history(work / "model" / "history" / "train.csv")][1:]  # first interval: warm-up
    tokens_per_interval = config.log_every * config.batch_size * model_config.block_size
    seconds = sum(tokens_per_interval / r["tokens_per_s"] for r in rows)
    return {"tokens_per_s": tokens_per_interval * len(rows) / seconds, "train_loss": result["train_loss"],
            "val_loss": result["val_loss"]}


def _read_history(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    keys = lines[0].split(",")
    return [dict(zip(keys, map(float, line.split(",")))) for line in lines[1:]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"error: {args.data}: not found (tinyshakespeare from ../shared/data)", file=sys.stderr)
        return 1
    model_config = ModelConfig(preset="shakespeare-cpu", dropout=0.0)
    config = TrainConfig(batch_size=12, max_steps=args.steps, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                         weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, log_every=max(1, args.steps // 20),
                         val_every=args.steps, val_batches=200, checkpoint_every=args.steps,
                         accelerator="cpu", devices=1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        meta = char_tokens(args.data, work / "tokens")
        torch_result = plain_loop(work / "tokens", meta, config, model_config)
        lightning_result = lightning_run(work / "tokens", work, config, model_config)
    report = {
        "config": {"steps": args.steps, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64,
                   "batch_size": 12, "vocab_size": meta["vocab_size"], "threads": torch.get_num_threads()},
        "plain_pytorch": torch_result,
        "lightning": lightning_result,
        "lightning_over_plain_tokens_per_s": lightning_result["tokens_per_s"] / torch_result["tokens_per_s"],
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
