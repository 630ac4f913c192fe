"""Sampling from a causal GPT: temperature, top-k and top-p (nucleus) filtering, a KV cache.

With the cache, the prompt is read once and each further step feeds only the newest token. The model's
positions are absolute, so once a sequence outgrows `block_size` the window must slide and every step
re-reads the last `block_size` tokens (what generation without the cache does at every step).
Sampling draws on the CPU from `generator`, so a seed gives the same text on every device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def filter_logits(logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """`logits` (B, V) with every token outside the top k, and outside the smallest set whose
    probability reaches top_p, set to -inf (the most likely token always stays)."""
    logits = logits.clone()
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k).values[:, [-1]]
        logits[logits < kth] = -float("inf")
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_logits.softmax(dim=-1) >= top_p  # the mass before a token already reaches p
        logits.scatter_(1, order, sorted_logits.masked_fill(drop, -float("inf")))
    return logits


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """The next token (B, 1) from last-position logits (B, V); temperature 0 is greedy (argmax)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    probs = F.softmax(filter_logits(logits.float() / temperature, top_k, top_p), dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).to(logits.device)


@torch.no_grad()
def generate(model, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, generator: torch.Generator | None = None, stop: int | None = None,
             use_cache: bool = True) -> torch.Tensor:
    """`idx` (B, T) with up to `max_new_tokens` tokens appended to each row. Generation ends early when
    every row has produced `stop`; a row that has stopped is filled with `stop` from then on."""
    if not getattr(model, "causal", True):
        raise ValueError("a masked-LM (bidirectional) model does not generate text left to right")
    if temperature < 0 or (top_p is not None and not 0 < top_p <= 1) or (top_k is not None and top_k < 1):
        raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, top_k >= 1; got {temperature}, {top_p}, {top_k}")
    block = model.config.block_size
    cache = None
    done = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
    for _ in range(max_new_tokens):
        if cache is not None and len(cache) == idx.size(1) - 1 and len(cache) < block:
            logits = model(idx[:, -1:], cache=cache)[0]
        else:  # the first step, or the window slides: read the last block_size tokens afresh
            context = idx[:, -block:]
            cache = model.new_cache() if use_cache and context.size(1) < block else None
            logits = model(context, cache=cache)[0]
        token = sample_next(logits[:, -1, :], temperature, top_k, top_p, generator)
        if stop is not None:
            token = token.masked_fill(done[:, None], stop)
            done |= token[:, 0] == stop
        idx = torch.cat([idx, token], dim=1)
        if stop is not None and bool(done.all()):
            break
    return idx
