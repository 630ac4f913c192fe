"""Evaluate stage: validation loss, perplexity and bits per byte of a trained model; samples per prompt.

Bits per byte do not depend on the tokenizer: the summed loss in nats over all target tokens divided
by ln 2 times the UTF-8 bytes those tokens stand for (end-of-text stands for none).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from tokenmill.errors import UserError
from tokenmill.stage import write_json
from training import tracking as mlf
from training.config import EvalConfig, TrackingConfig
from training.data import FixedWindows
from training.tokenizer import load_tokenizer, read_meta, read_tokens, token_byte_lengths
from training.train import load_model


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    return total_nats / (math.log(2) * total_bytes) if total_bytes else float("nan")


def unigram_log_probs(train_tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """log p(token) from train.bin counts (add-one smoothed): the baseline a model must beat."""
    counts = np.bincount(train_tokens, minlength=vocab_size).astype(np.float64) + 1.0
    return np.log(counts / counts.sum())


@torch.no_grad()
def loss_sums(model, tokens: np.ndarray, byte_lengths: np.ndarray, block_size: int, batch_size: int,
              unigram: np.ndarray) -> dict:
    """Summed nats (model and unigram baseline), target tokens and target bytes over
    non-overlapping windows of `tokens`."""
    windows = FixedWindows(tokens, block_size)
    nats, unigram_nats, count, nbytes = 0.0, 0.0, 0, 0
    lengths, unigram = torch.from_numpy(byte_lengths), torch.from_numpy(unigram)
    for start in tqdm(range(0, len(windows), batch_size), desc="evaluate", unit="batch", file=sys.stderr):
        x, y = (torch.stack(t) for t in zip(*(windows[j] for j in range(start, min(start + batch_size, len(windows))))))
        logits, _ = model(x)
        nats += F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="sum").item()
        count += y.numel()
        nbytes += int(lengths[y].sum())
        unigram_nats -= float(unigram[y].sum())
    return {"nats": nats, "unigram_nats": unigram_nats, "tokens": count, "bytes": nbytes}


def generate_samples(model, tokenizer, config: EvalConfig, eot_id: int | None) -> list[dict]:
    """`config.samples` continuations of each prompt, cut at the first end-of-text."""
    generator = torch.Generator().manual_seed(config.seed)
    samples = []
    for prompt in config.prompts:
        ids = tokenizer.encode(prompt).ids or [0]
        idx = torch.tensor([ids] * config.samples, dtype=torch.long) if config.samples else None
        outputs = [] if idx is None else model.generate(idx, config.max_new_tokens, config.temperature,
                                                         config.top_k, generator).tolist()
        samples.append({"prompt": prompt,
                        "samples": [tokenizer.decode(_until(row[len(ids):], eot_id)) for row in outputs]})
    return samples


def _until(ids: list[int], stop: int | None) -> list[int]:
    return ids[: ids.index(stop)] if stop in ids else ids


def evaluate(model_dir: Path, tokens: Path, out: Path, config: EvalConfig, tracking: TrackingConfig) -> dict:
    """Write `out` (metrics.json) and samples.json beside it; log both to the model's MLflow run."""
    model_dir, tokens, out = Path(model_dir), Path(tokens), Path(out)
    torch.manual_seed(config.seed)
    model = load_model(model_dir)
    tokenizer = load_tokenizer(model_dir / "tokenizer.json")
    meta = read_meta(tokens)
    if meta["vocab_size"] != model.vocab_size:
        raise UserError(f"{tokens}: vocab size {meta['vocab_size']} differs from the model's {model.vocab_size}")
    val = read_tokens(tokens, "val", meta)[: config.max_tokens + 1]
    block_size = model.config.block_size
    if len(val) < 2:
        raise UserError(f"{tokens / 'val.bin'}: too few tokens to evaluate")
    unigram = unigram_log_probs(read_tokens(tokens, "train", meta), meta["vocab_size"])
    sums = loss_sums(model, val, token_byte_lengths(tokenizer), min(block_size, len(val) - 1), config.batch_size,
                     unigram)
    val_loss = sums["nats"] / sums["tokens"]
    metrics = {"val_loss": val_loss, "perplexity": math.exp(val_loss),
               "bits_per_byte": bits_per_byte(sums["nats"], sums["bytes"]),
               "unigram_val_loss": sums["unigram_nats"] / sums["tokens"],
               "tokens": sums["tokens"], "bytes": sums["bytes"]}
    samples = generate_samples(model, tokenizer, config, meta.get("eot_id"))
    write_json(out, metrics)
    write_json(out.with_name("samples.json"), samples)
    _log_to_run(model_dir, tracking, metrics, out)
    return {**metrics, "samples": samples}


def _log_to_run(model_dir: Path, tracking: TrackingConfig, metrics: dict, out: Path) -> None:
    run_file = model_dir / "run.json"
    if not tracking.enabled or not run_file.is_file():
        return
    run_id = json.loads(run_file.read_text(encoding="utf-8"))["run_id"]
    if mlf.existing_run(tracking, run_id) is None:
        print(f"warning: MLflow run {run_id} (from {run_file}) not in {tracking.tracking_uri}; not logged",
              file=sys.stderr)
        return
    client = mlf.client(tracking)
    for key in ("val_loss", "perplexity", "bits_per_byte", "unigram_val_loss"):
        client.log_metric(run_id, f"eval/{key}", metrics[key])
    client.log_artifact(run_id, str(out), "eval")
    client.log_artifact(run_id, str(out.with_name("samples.json")), "eval")
