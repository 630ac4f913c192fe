"""Benchmark: tokenmill's batched decoding (what `tokenmill serve` runs) against transformers' `generate`
on the same model exported to Hugging Face format (training/export.py), in the same run.

One GPT of the `--preset` shape (random weights: speed does not depend on them) with a BPE tokenizer
trained on a few English, Persian and Polish sentences; `tokenmill export` writes its GPT2LMHeadModel.
Both sides decode greedily the same prompts (of different lengths: 8 prompts of 8 to 50 tokens; batch
1 takes the first), exactly `--new-tokens` tokens each (no end token stops them), left-padded with an
attention mask on the transformers side. Each side runs in its own process, pinned to its own core
(`taskset -c`), with the same thread count (torch.set_num_threads and OMP_NUM_THREADS); one side after
the other. Figures are medians over `--repeats` runs after one warm-up:

  tokens/s  batch x new tokens / the wall time of the whole generation (prefill included)
  TTFT      time to first token: the prompt read and the first token drawn (transformers: generate
            with max_new_tokens=1)

The greedy tokens of both sides are compared (the share of rows that agree is printed: fp32 sums in
another order may flip a near tie, so not every row of a random model need agree).

    flock /tmp/tokenmill-bench.lock .venv/bin/python bench/serve.py [--preset demo] [--threads 1] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ["The river runs through the old city of {n} bridges.", "In {n} the library opened its doors again.",
             "این شهر {n} پل قدیمی دارد که هنوز استفاده می‌شوند.", "قیمت نان امروز {n} تومان است.",
             "Biblioteka w Łodzi ma {n} tysięcy książek.", "Źródło rzeki leży wysoko w górach, rok {n}."]
PROMPT_LENGTHS = [50, 8, 31, 17, 44, 12, 25, 38]  # batch 8; batch 1 takes the first


def build(directory: Path, preset: str, vocab_size: int) -> tuple[Path, Path]:
    """A model directory (model.pt + tokenizer.json, as the train stage writes) and its HF export."""
    import torch

    from tokenmill.config import to_dict
    from training.config import ModelConfig, TokenizeConfig
    from training.export import export_gpt
    from training.model import GPT
    from training.tokenizer import train_tokenizer

    texts = [" ".join(s.format(n=i * 7 + k) for k, s in enumerate(SENTENCES)) for i in range(300)]
    tokenizer = train_tokenizer(texts, TokenizeConfig(vocab_size=vocab_size, min_frequency=1))
    torch.manual_seed(0)
    config = ModelConfig(preset=preset)
    model = GPT(config, tokenizer.get_vocab_size()).eval()
    model_dir = directory / "model"
    model_dir.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "model_config": to_dict(config),
                "vocab_size": model.vocab_size, "eot_id": 0, "step": 0}, model_dir / "model.pt")
    tokenizer.save(str(model_dir / "tokenizer.json"))
    export_gpt(model, tokenizer, directory / "hf")
    return model_dir, directory / "hf"


def prompts(vocab_size: int, batch: int) -> list[list[int]]:
    """Token ids of `batch` prompts: BOS (1) and ordinary tokens (ids past the 4 special ones)."""
    import random

    rng = random.Random(0)
    return [[1] + [rng.randrange(4, vocab_size) for _ in range(n - 1)] for n in PROMPT_LENGTHS[:batch]]


def median_time(run, repeats: int) -> tuple[float, object]:
    result = run()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def side_ours(model_dir: Path, batch: int, new_tokens: int, repeats: int) -> dict:
    from training.config import TrackingConfig
    from training.generate import BatchDecoder, SamplingParams
    from training.language_model import load_language_model

    lm = load_language_model(model_dir, TrackingConfig(enabled=False))
    rows = prompts(lm.model.vocab_size, batch)
    greedy = [SamplingParams(temperature=0)] * batch

    def run(steps: int):
        decoder = BatchDecoder(lm.model, rows, greedy, lm.pad or 0)
        for _ in range(steps):
            decoder.step()
        return [row[len(p):] for row, p in zip(decoder.rows, rows)]

    seconds, tokens = median_time(lambda: run(new_tokens), repeats)
    ttft, _ = median_time(lambda: run(1), repeats)
    return {"seconds": seconds, "ttft_s": ttft, "tokens": tokens}


def side_transformers(hf_dir: Path, batch: int, new_tokens: int, repeats: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    rows = prompts(model.config.vocab_size, batch)
    width = max(len(r) for r in rows)
    pad = model.generation_config.pad_token_id if model.generation_config.pad_token_id is not None else 0
    ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])

    def run(steps: int):
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=steps, min_new_tokens=steps,
                                 do_sample=False, pad_token_id=pad, eos_token_id=None)
        return out[:, width:].tolist()

    seconds, tokens = median_time(lambda: run(new_tokens), repeats)
    ttft, _ = median_time(lambda: run(1), repeats)
    return {"seconds": seconds, "ttft_s": ttft, "tokens": tokens}


def run_side(args) -> None:
    """A child process: one side, every batch size, figures as JSON on stdout."""
    import torch

    torch.set_num_threads(args.threads)
    measure = side_ours if args.side == "ours" else side_transformers
    results = {batch: measure(Path(args.dir), batch, args.new_tokens, args.repeats) for batch in (1, 8)}
    print(json.dumps(results))


def child(side: str, core: int, directory: Path, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    pin = ["taskset", "-c", str(core)] if shutil.which("taskset") else []
    command = [*pin, sys.executable, __file__, "--side", side, "--dir", str(directory), "--threads", str(args.threads),
               "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"{side} failed:\n{proc.stderr[-3000:]}")
    return {int(k): v for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items()}


def report(ours: dict, theirs: dict, new_tokens: int) -> None:
    print(f"{'batch':>5}  {'tokenmill tok/s':>15}  {'transformers tok/s':>18}  {'ratio':>6}  "
          f"{'TTFT ms (ours / hf)':>20}  greedy rows agreeing")
    for batch in (1, 8):
        a, b = ours[batch], theirs[batch]
        rate_a, rate_b = batch * new_tokens / a["seconds"], batch * new_tokens / b["seconds"]
        agree = sum(x == y for x, y in zip(a["tokens"], b["tokens"]))
        print(f"{batch:>5}  {rate_a:>15.1f}  {rate_b:>18.1f}  {rate_a / rate_b:>5.2f}x  "
              f"{a['ttft_s'] * 1000:>9.1f} / {b['ttft_s'] * 1000:<8.1f}  {agree}/{batch}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="demo", help="model shape (training/config.py MODEL_PRESETS; default: demo)")
    parser.add_argument("--vocab-size", type=int, default=2048, help="BPE vocabulary to train at most (default: 2048)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each side (default: 1)")
    parser.add_argument("--new-tokens", type=int, default=64, help="tokens generated per row (default: 64)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure; medians (default: 5)")
    parser.add_argument("--cores", default="0,1", help="cores to pin ours,transformers to (default: 0,1)")
    parser.add_argument("--side", choices=["ours", "transformers"], help=argparse.SUPPRESS)
    parser.add_argument("--dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return run_side(args)
    cores = [int(c) for c in args.cores.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        model_dir, hf_dir = build(Path(tmp), args.preset, args.vocab_size)
        print(f"{args.preset} GPT, {args.threads} thread(s) a side, {args.new_tokens} new tokens a row, "
              f"medians of {args.repeats}", file=sys.stderr)
        ours = child("ours", cores[0], model_dir, args)
        theirs = child("transformers", cores[-1], hf_dir, args)
    report(ours, theirs, args.new_tokens)


if __name__ == "__main__":
    main()
