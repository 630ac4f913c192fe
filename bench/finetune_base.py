"""A stand-in for the demo's models/gpt, for measuring the fine-tuning stages where the demo has not run.

    python bench/finetune_base.py OUT [--steps 60]

The demo's shape (model preset `demo`: 4 layers, 4 heads, 128 wide, context 128) and tokenizer kind
(byte-level BPE with BOS/EOS; 4,096 entries), trained here on the first 300,000 characters of
tinyshakespeare (../shared/data) plus the handbook-like
example texts of examples/finetune (English, Persian, Polish), then pre-trained for --steps steps of
next-token prediction on that text. Like the demo's model it has read no arithmetic: the task's
skill has to come from fine-tuning.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from training.config import ModelConfig, TokenizeConfig
from training.finetune.model_dir import gpt_record
from training.model import GPT
from training.tokenizer import special_ids, train_tokenizer

ROOT = Path(__file__).resolve().parents[1]
# ../shared/data from the main checkout (/work/main), ../../shared/data from a worktree (/work/wt/NAME)
SHAKESPEARE = next((p for p in (ROOT.parent / "shared", ROOT.parent.parent / "shared")
                    if (p / "data" / "tinyshakespeare" / "input.txt").is_file()),
                   ROOT.parent / "shared") / "data" / "tinyshakespeare" / "input.txt"


def texts() -> list[str]:
    handbook = []
    for name in ("sft.jsonl", "preferences.jsonl"):
        for line in (ROOT / "examples" / "finetune" / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            handbook += [v for k, v in row.items() if k in ("prompt", "response", "chosen", "rejected")]
    plays = SHAKESPEARE.read_text(encoding="utf-8")[:300_000].split("\n\n") if SHAKESPEARE.is_file() else []
    print(f"{len(plays)} passages of {SHAKESPEARE if plays else 'tinyshakespeare (not found)'}, "
          f"{len(handbook)} handbook texts x 20", flush=True)
    return plays + handbook * 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.manual_seed(1337)
    documents = texts()
    tokenizer = train_tokenizer(iter(documents), TokenizeConfig(vocab_size=4096))
    ids = special_ids(tokenizer)
    stream = [t for d in documents for t in [ids["bos"], *tokenizer.encode(d, add_special_tokens=False).ids, ids["eos"]]]
    data = torch.tensor(stream)
    config = ModelConfig(preset="demo")
    gpt = GPT(config, tokenizer.get_vocab_size())
    optimizer = torch.optim.AdamW(gpt.param_groups(0.1), lr=2e-3, betas=(0.9, 0.95))
    generator = torch.Generator().manual_seed(1337)
    for step in range(args.steps):
        starts = torch.randint(0, len(data) - config.block_size - 1, (16,), generator=generator)
        x = torch.stack([data[s:s + config.block_size] for s in starts])
        y = torch.stack([data[s + 1:s + config.block_size + 1] for s in starts])
        _, loss = gpt(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.3f}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(gpt_record(gpt.eval(), ids["eos"], args.steps), args.out / "model.pt")
    tokenizer.save(str(args.out / "tokenizer.json"))


if __name__ == "__main__":
    main()
