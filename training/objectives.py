"""Training objectives: what the model sees and what it must predict.

causal  next-token prediction: inputs x, targets x shifted by one (the token windows as they are).
masked  masked language modelling (BERT): a bidirectional model sees the window with a share `rate` of
        its positions selected; of those, 80 % are replaced by the MASK token, 10 % by a random ordinary
        token and 10 % left as they are. Only the selected positions are targets; every other target is
        -100, which the loss (cross_entropy's ignore_index) skips. Special tokens (BOS, EOS, PAD, MASK)
        are never selected. Every row gets at least one target, so a batch's loss is always defined.

The masks are a pure function of the tokens and the generator's state: seed the generator with
(seed, step, rank) and a resumed run masks exactly as an uninterrupted one.
"""

from __future__ import annotations

import hashlib

import torch

OBJECTIVES = ("causal", "masked")
IGNORE_INDEX = -100  # targets with this value do not count (torch.nn.functional.cross_entropy's default)


def mask_tokens(ids: torch.Tensor, mask_id: int, vocab_size: int, rate: float = 0.15,
                generator: torch.Generator | None = None,
                protected: tuple[int, ...] = (0, 1, 2, 3)) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) of the masked-LM objective for token ids (B, T); see the module docstring.
    `protected` are the ids never selected (the special tokens: ids 0..3 of tokenmill tokenizers);
    random replacements are drawn from the other ids. Random numbers are drawn on the CPU."""
    if not 0.0 < rate < 1.0:
        raise ValueError(f"mask rate must be between 0 and 1, got {rate}")
    cpu = ids.detach().cpu().long()
    eligible = ~torch.isin(cpu, torch.tensor(protected, dtype=torch.long))
    selected = (torch.rand(cpu.shape, generator=generator) < rate) & eligible
    # A row the draw left without a target gets one at a random eligible position (if it has any).
    empty = ~selected.any(dim=1) & eligible.any(dim=1)
    if empty.any():
        scores = torch.rand(cpu.shape, generator=generator).masked_fill(~eligible, -1.0)
        rows = empty.nonzero(as_tuple=True)[0]
        selected[rows, scores[rows].argmax(dim=1)] = True
    action = torch.rand(cpu.shape, generator=generator)
    ordinary = torch.tensor(sorted(set(range(vocab_size)) - set(protected)), dtype=torch.long)
    random_ids = ordinary[torch.randint(len(ordinary), cpu.shape, generator=generator)]
    inputs = cpu.clone()
    inputs[selected & (action < 0.8)] = mask_id
    replace = selected & (action >= 0.8) & (action < 0.9)
    inputs[replace] = random_ids[replace]
    targets = cpu.masked_fill(~selected, IGNORE_INDEX)
    return inputs.to(ids.device), targets.to(ids.device)


def masking_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """The generator of the masks of optimizer step `step` on rank `rank`: a pure function of the three."""
    digest = hashlib.sha256(f"masks:{seed}:{step}:{rank}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "big") >> 1)


def training_pair(x: torch.Tensor, y: torch.Tensor, objective: str, mask_id: int | None = None,
                  vocab_size: int | None = None, rate: float = 0.15,
                  generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for one batch of windows (x, y = x shifted by one) under `objective`."""
    if objective == "causal":
        return x, y
    if objective == "masked":
        if mask_id is None or vocab_size is None:
            raise ValueError("the masked objective needs the tokenizer's mask id (re-run tokenize) and vocab size")
        return mask_tokens(x, mask_id, vocab_size, rate, generator)
    raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")


def causal_windows(n_tokens: int, block_size: int, stride: int | None = None) -> list[tuple[int, int, int]]:
    """(begin, length, first scored offset) of each window over a stream of `n_tokens` tokens: window
    tokens [begin, begin + length) predict targets [begin + 1, begin + length + 1); only targets from the
    offset on are scored. Every target 1..n_tokens-1 is scored exactly once."""
    targets = n_tokens - 1
    if targets < 1:
        return []
    if targets <= block_size:
        return [(0, targets, 0)]
    stride = min(stride or max(1, block_size // 2), block_size)
    spans, scored_until, begin = [], 0, 0
    while True:
        spans.append((begin, block_size, scored_until - begin))
        scored_until = begin + block_size
        if scored_until >= targets:
            return spans
        begin = min(begin + stride, targets - block_size)
