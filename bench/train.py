"""Benchmark: our Lightning trainer against a plain PyTorch loop on tinyshakespeare, in the same run.

Character-level tinyshakespeare (90/10 split), the data README's CPU-sized GPT: 4 layers, 4 heads,
128 channels, context 64, batch 12, 2000 steps (published reference: about 1.88 validation loss).
Both sides use the same model, init seed, samples, AdamW groups, learning-rate schedule, gradient
clipping, precision (fp32 on CPU) and thread count (--threads, set in each side's process). Each side
runs in its own child process so that its peak resident memory is its own. tokens/s is measured over
the training steps after the first log interval (warm-up and validation excluded). Validation loss:
the mean over the first `val_batches` non-overlapping windows of the held-out 10 %.

A third run (--tuned, default on) trains our trainer with the same step budget, batch and model but
a higher learning rate (2e-3 -> 2e-4 instead of 1e-3 -> 1e-4), to aim below the reference loss.

    .venv/bin/python bench/train.py [--steps 2000] [--threads 2] [--data ../shared/data/tinyshakespeare/input.txt]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from dataclasses import replace
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


def plain_loop(tokens: Path, work: Path, config: TrainConfig, model_config: ModelConfig) -> dict:
    """The same training as training.train, written as the textbook loop."""
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    meta = json.loads((tokens / "meta.json").read_text())
    model = GPT(model_config, meta["vocab_size"])
    optimizer = torch.optim.AdamW(model.param_groups(config.weight_decay), lr=config.lr, betas=config.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, config) / config.lr)
    dataset = RandomWindows(tokens / "train.bin", "uint16", model_config.block_size, config.seed)
    batches = iter(DataLoader(dataset, batch_size=config.batch_size, sampler=StridedSampler(0, 0, 1)))
    marks, losses = {}, []
    started = time.perf_counter()
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
    wall = time.perf_counter() - started
    first, last = min(marks), max(marks)
    tokens_per_step = config.batch_size * model_config.block_size
    return {"tokens_per_s": (last - first) * tokens_per_step / (marks[last] - marks[first]),
            "train_loss": float(np.mean(losses[-config.log_every:])), "train_wall_s": wall,
            "val_loss": val_loss(model, tokens, model_config.block_size, config.batch_size, config.val_batches)}


def lightning_run(tokens: Path, work: Path, config: TrainConfig, model_config: ModelConfig) -> dict:
    started = time.perf_counter()
    result = train(tokens, work / "model", config, model_config, TrackingConfig(enabled=False),
                   checkpoints=work / "checkpoints")
    wall = time.perf_counter() - started
    rows = _read_history(work / "model" / "history" / "train.csv")[1:]  # first interval: warm-up
    tokens_per_interval = config.log_every * config.batch_size * model_config.block_size
    seconds = sum(tokens_per_interval / r["tokens_per_s"] for r in rows)
    return {"tokens_per_s": tokens_per_interval * len(rows) / seconds, "train_loss": result["train_loss"],
            "train_wall_s": wall, "val_loss": result["val_loss"]}


def _read_history(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    keys = lines[0].split(",")
    return [{k: float(v) for k, v in zip(keys, line.split(",")) if v} for line in lines[1:]]


def _child(side: str, tokens: str, work: str, config: TrainConfig, model_config: ModelConfig, threads: int) -> dict:
    torch.set_num_threads(threads)
    run = plain_loop if side == "plain" else lightning_run
    result = run(Path(tokens), Path(work), config, model_config)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    return result


def in_children(jobs: list[tuple], side_by_side: bool) -> list[dict]:
    """Run each (side, tokens, work, config, model_config, threads) in its own process: one after the
    other, or all at once (on a shared, busy machine both sides then see the same load)."""
    for job in jobs:
        Path(job[2]).mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    if side_by_side:
        with context.Pool(len(jobs)) as pool:
            pending = [pool.apply_async(_child, tuple(map(_plain, job))) for job in jobs]
            return [p.get() for p in pending]
    results = []
    for job in jobs:
        with context.Pool(1) as pool:
            results.append(pool.apply(_child, tuple(map(_plain, job))))
    return results


def _plain(value):
    return str(value) if isinstance(value, Path) else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    parser.add_argument("--no-tuned", dest="tuned", action="store_false", help="skip the tuned run")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run plain and Lightning at the same time (a busy shared machine: same load for both)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"error: {args.data}: not found (tinyshakespeare from ../shared/data)", file=sys.stderr)
        return 1
    model_config = ModelConfig(preset="shakespeare-cpu", dropout=0.0)
    config = TrainConfig(batch_size=12, max_steps=args.steps, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                         weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, log_every=max(1, args.steps // 20),
                         val_every=args.steps, val_batches=200, checkpoint_every=args.steps,
                         accelerator="cpu", devices=1, precision="32-true")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        meta = char_tokens(args.data, work / "tokens")
        plain, lightning = in_children([("plain", work / "tokens", work / "plain", config, model_config, args.threads),
                                        ("lightning", work / "tokens", work / "lightning", config, model_config,
                                         args.threads)], args.side_by_side)
        tuned = None
        if args.tuned:
            tuned_config = replace(config, lr=2e-3, min_lr=2e-4)
            (tuned,) = in_children([("lightning", work / "tokens", work / "tuned", tuned_config, model_config,
                                     args.threads)], False)
    report = {
        "config": {"steps": args.steps, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64,
                   "batch_size": 12, "vocab_size": meta["vocab_size"], "threads": args.threads,
                   "precision": "32-true", "lr": config.lr, "side_by_side": args.side_by_side},
        "plain_pytorch": plain,
        "lightning": lightning,
        "lightning_over_plain_tokens_per_s": lightning["tokens_per_s"] / plain["tokens_per_s"],
        "lightning_over_plain_peak_rss": lightning["peak_rss_mib"] / plain["peak_rss_mib"],
        "reference_val_loss": 1.88,
    }
    if tuned is not None:
        report["lightning_tuned_lr_2e-3"] = tuned
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
