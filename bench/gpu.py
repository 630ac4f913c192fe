"""Benchmark on GPUs: tokens/s and MFU of gpt2-small (124M) in bf16-mixed with torch.compile.

1. One GPU: `tokenmill train` (Lightning) against a plain PyTorch loop of the same model, batch,
   precision (bf16 autocast, fp32 weights), fused AdamW and compile, in the same run.
2. Every visible GPU, when there are 2 or more: `tokenmill train` with strategy ddp.
Throughput counts the steps after the first log interval (compilation and warm-up excluded). The data is
a random token file (throughput does not depend on what the tokens say). MFU = (6·N + 12·L·H·Q·T)
FLOPs per token × tokens/s per device ÷ the device's dense bf16 peak (training/measure.py: A100 312,
H100 SXM 989, H200 989 TFLOP/s).

    .venv/bin/python bench/gpu.py [--steps 60] [--batch-size 16]

Written without a GPU at hand: untested on GPU until someone runs it (README says when it was run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from tokenmill.stage import write_json
from training.config import ModelConfig, TrainConfig
from training.data import RandomWindows, StridedSampler
from training.measure import device_peak_flops, flops_per_token
from training.model import GPT
from training.module import lr_at

VOCAB = 50304  # GPT-2's 50257 rounded up to a multiple of 64 (as nanoGPT does, for fast matmuls)


def random_tokens(out: Path, n_tokens: int = 20_000_000) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rng.integers(0, VOCAB, n_tokens, dtype=np.uint16).tofile(out / "train.bin")
    rng.integers(0, VOCAB, 200_000, dtype=np.uint16).tofile(out / "val.bin")
    write_json(out / "meta.json", {"corpus": None, "dtype": "uint16", "eot_id": None, "vocab_size": VOCAB,
                                   "train": {"tokens": n_tokens}, "val": {"tokens": 200_000}})
    return out


def plain_loop(tokens: Path, config: TrainConfig, model_config: ModelConfig) -> dict:
    """The textbook loop: bf16 autocast, fused AdamW, compiled model, same schedule and clipping."""
    torch.manual_seed(config.seed)
    device = torch.device("cuda")
    model = GPT(model_config, VOCAB).to(device)
    optimizer = torch.optim.AdamW(model.param_groups(config.weight_decay), lr=config.lr, betas=config.betas,
                                  fused=True)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, config) / config.lr)
    model.compile()
    dataset = RandomWindows(tokens / "train.bin", "uint16", model_config.block_size, config.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, sampler=StridedSampler(0, 0, 1),
                                         pin_memory=True)
    batches = iter(loader)
    marks = {}
    for step in range(1, config.max_steps + 1):
        x, y = (t.to(device, non_blocking=True) for t in next(batches))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if step % config.log_every == 0:
            loss.item()  # synchronise
            marks[step] = time.perf_counter()
    first, last = min(marks), max(marks)
    tokens_per_s = (last - first) * config.batch_size * model_config.block_size / (marks[last] - marks[first])
    return {"tokens_per_s": tokens_per_s, "cuda_max_allocated_gib": torch.cuda.max_memory_allocated() / 2**30}


def tokenmill_train(tokens: Path, work: Path, train_values: dict, devices: int) -> dict:
    """`tokenmill train` as a user runs it (Lightning's launcher starts one process per GPU)."""
    params = {"model": {"preset": "gpt2-small"}, "train": {**train_values, "devices": devices},
              "tracking": {"enabled": False}}
    work.mkdir(parents=True, exist_ok=True)
    (work / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "train", "--json", "--params",
                           str(work / "params.yaml"), "--tokens", str(tokens), "--out", str(work / "model"),
                           "--checkpoints", str(work / "ckpt")], capture_output=True, text=True, cwd=work,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if proc.returncode != 0:
        raise SystemExit(f"tokenmill train failed:\n{proc.stderr[-4000:]}")
    stats = json.loads((work / "model" / "stats.json").read_text())
    lines = (work / "model" / "history" / "train.csv").read_text().splitlines()
    keys = lines[0].split(",")
    rows = [dict(zip(keys, line.split(","))) for line in lines[2:]]  # first interval: compilation
    per_device = float(np.mean([float(r["tokens_per_s_per_device"]) for r in rows]))
    return {"tokens_per_s_per_device": per_device, "devices": stats["devices"], "precision": stats["precision"],
            "memory_measured_gib": stats["memory_measured_gib"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: no CUDA GPU visible; this benchmark needs one", file=sys.stderr)
        return 1
    model_config = ModelConfig(preset="gpt2-small")
    log_every = max(1, args.steps // 6)
    train_values = {"batch_size": args.batch_size, "max_steps": args.steps, "lr": 6e-4, "min_lr": 6e-5,
                    "warmup_steps": 10, "log_every": log_every, "val_every": args.steps, "val_batches": 1,
                    "checkpoint_every": args.steps, "precision": "bf16-mixed", "compile": True,
                    "accelerator": "gpu", "strategy": "auto"}
    config = TrainConfig(**{k: v for k, v in train_values.items()})
    with torch.device("meta"):
        reference = GPT(model_config, VOCAB)
    fpt = flops_per_token(reference.num_parameters(), reference.wpe.weight.numel(), model_config.n_layer,
                          model_config.n_head, model_config.n_embd, model_config.block_size)
    name, peak = device_peak_flops("cuda:0")

    def mfu(per_device: float) -> float | None:
        return per_device * fpt / peak if peak else None

    report = {"device": name, "peak_bf16_flops": peak, "flops_per_token": fpt,
              "flops_formula": "6*N + 12*L*H*Q*T", "model": "gpt2-small", "vocab_size": VOCAB,
              "batch_size_per_device": args.batch_size, "block_size": model_config.block_size, "steps": args.steps}
    with tempfile.TemporaryDirectory() as tmp:
        tokens = random_tokens(Path(tmp) / "tokens")
        plain = plain_loop(tokens, config, model_config)
        torch.cuda.empty_cache()
        ours = tokenmill_train(tokens, Path(tmp) / "one", train_values, devices=1)
        report["one_gpu"] = {"plain_pytorch_tokens_per_s": plain["tokens_per_s"],
                             "plain_pytorch_mfu": mfu(plain["tokens_per_s"]),
                             "plain_cuda_max_allocated_gib": plain["cuda_max_allocated_gib"],
                             "tokenmill_tokens_per_s": ours["tokens_per_s_per_device"],
                             "tokenmill_mfu": mfu(ours["tokens_per_s_per_device"]),
                             "tokenmill_memory": ours["memory_measured_gib"],
                             "tokenmill_over_plain": ours["tokens_per_s_per_device"] / plain["tokens_per_s"]}
        gpus = torch.cuda.device_count()
        if gpus >= 2:
            ddp = tokenmill_train(tokens, Path(tmp) / "ddp", {**train_values, "strategy": "ddp"}, devices=gpus)
            report["ddp"] = {"devices": gpus, "tokens_per_s_per_device": ddp["tokens_per_s_per_device"],
                             "tokens_per_s": ddp["tokens_per_s_per_device"] * gpus,
                             "mfu": mfu(ddp["tokens_per_s_per_device"]),
                             "scaling_efficiency": ddp["tokens_per_s_per_device"] / ours["tokens_per_s_per_device"]}
        else:
            report["ddp"] = f"skipped: {gpus} GPU visible"
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
