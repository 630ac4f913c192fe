"""Benchmark: our Lightning trainer against a plain PyTorch loop on tinyshakespeare, in the same run.

Character-level tinyshakespeare (90/10 split), the data README's CPU-sized GPT: 4 layers, 4 heads,
128 channels, context 64, batch 12, 2000 steps (published reference: about 1.88 validation loss).
Both sides use the same model, init seed, samples, AdamW groups, learning-rate schedule, gradient
clipping, precision (fp32 on CPU) and thread count (--threads, set in each side's process). Each side
runs in its own child process so that its peak resident memory is its own. tokens/s is measured over
the training steps after the first log interval (warm-up and validation excluded). Validation loss:
the mean over the first `val_batches` non-overlapping windows of the held-out 10 %.

Each side is pinned to a core of its own (os.sched_setaffinity): with --side-by-side the two run at once
on cores 0 and 1 with one thread each, otherwise one after the other on core 0. --rounds R repeats the
comparison R times (the order alternating) and reports the medians: two unpinned processes on a 2-core
machine slow each other unevenly, and one run measures that noise as much as the trainers.

A third run (--tuned, default on) trains our trainer with the same step budget, batch and model but
a higher learning rate (2e-3 -> 2e-4 instead of 1e-3 -> 1e-4), to aim below the reference loss.

    .venv/bin/python bench/train.py [--steps 2000] [--threads 1] [--rounds 3] [--side-by-side]
                                    [--data ../shared/data/tinyshakespeare/input.txt]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
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


def _child(side: str, tokens: str, work: str, config: TrainConfig, model_config: ModelConfig, threads: int,
           core: int) -> dict:
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(threads)
    run = plain_loop if side == "plain" else lightning_run
    result = run(Path(tokens), Path(work), config, model_config)
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["threads"] = torch.get_num_threads()
    result["core"] = core
    return result


def in_children(jobs: list[tuple], side_by_side: bool) -> list[dict]:
    """Run each (side, tokens, work, config, model_config, threads, core) in its own process, pinned to
    its core: one after the other, or all at once."""
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


def _median_run(runs: list[dict]) -> dict:
    """The run with the median tokens/s (its other figures with it)."""
    return sorted(runs, key=lambda run: run["tokens_per_s"])[len(runs) // 2]


def _plain(value):
    return str(value) if isinstance(value, Path) else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads on both sides")
    parser.add_argument("--rounds", type=int, default=3, help="comparisons to take the median of (default: 3)")
    parser.add_argument("--no-tuned", dest="tuned", action="store_false", help="skip the tuned run")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run plain and Lightning at the same time, each on its own core (0 and 1)")
    args = parser.parse_args(argv)
    if not args.data.is_file():
        print(f"error: {args.data}: not found (tinyshakespeare from ../shared/data)", file=sys.stderr)
        return 1
    model_config = ModelConfig(preset="shakespeare-cpu", dropout=0.0)
    config = TrainConfig(batch_size=12, max_steps=args.steps, lr=1e-3, min_lr=1e-4, warmup_steps=100,
                         weight_decay=0.1, betas=(0.9, 0.99), grad_clip=1.0, log_every=max(1, args.steps // 20),
                         val_every=args.steps, val_batches=200, checkpoint_every=args.steps,
                         accelerator="cpu", devices=1, precision="32-true")
    if args.side_by_side and args.threads != 1:
        parser.error("--side-by-side runs each side on one core of its own: use --threads 1")
    cores = (0, 1) if args.side_by_side else (0, 0)
    rounds = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        meta = char_tokens(args.data, work / "tokens")
        for r in range(args.rounds):
            jobs = [(side, work / "tokens", work / f"{side}-{r}", config, model_config, args.threads, core)
                    for side, core in zip(("plain", "lightning"), cores)]
            order = jobs if r % 2 == 0 else jobs[::-1]  # alternate which side goes first
            results = {job[0]: result for job, result in zip(order, in_children(order, args.side_by_side))}
            rounds.append(results)
            print(f"round {r + 1}: lightning/plain tokens/s "
                  f"{results['lightning']['tokens_per_s'] / results['plain']['tokens_per_s']:.3f}", file=sys.stderr)
        tuned = None
        if args.tuned:
            tuned_config = replace(config, lr=2e-3, min_lr=2e-4)
            (tuned,) = in_children([("lightning", work / "tokens", work / "tuned", tuned_config, model_config,
                                     args.threads, 0)], False)
    plain, lightning = (_median_run([r[side] for r in rounds]) for side in ("plain", "lightning"))
    report = {
        "config": {"steps": args.steps, "n_layer": 4, "n_head": 4, "n_embd": 128, "block_size": 64,
                   "batch_size": 12, "vocab_size": meta["vocab_size"], "threads": args.threads,
                   "precision": "32-true", "lr": config.lr, "side_by_side": args.side_by_side,
                   "rounds": args.rounds, "cores": list(cores)},
        "plain_pytorch": plain,
        "lightning": lightning,
        "lightning_over_plain_tokens_per_s": statistics.median(
            r["lightning"]["tokens_per_s"] / r["plain"]["tokens_per_s"] for r in rounds),
        "lightning_over_plain_tokens_per_s_rounds": [r["lightning"]["tokens_per_s"] / r["plain"]["tokens_per_s"]
                                                     for r in rounds],
        "lightning_over_plain_peak_rss": lightning["peak_rss_mib"] / plain["peak_rss_mib"],
        "reference_val_loss": 1.88,
    }
    if tuned is not None:
        report["lightning_tuned_lr_2e-3"] = tuned
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
