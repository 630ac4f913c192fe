"""Sampling from a causal GPT: temperature, top-k and top-p (nucleus) filtering, a KV cache.

With the cache, the prompt is read once and each further step feeds only the newest token. The model's
positions are absolute, so once a sequence outgrows `block_size` the window must slide and every step
re-reads the last `block_size` tokens (what generation without the cache does at every step).
Sampling draws on the CPU from `generator`, so a seed gives the same text on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class SamplingParams:
    """How one sequence is sampled: temperature 0 is greedy; top_k / top_p None keep every token;
    `seed` None draws from a seed of its own; `stop` strings end the text (they are not part of it)."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be >= 0, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {self.top_k}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if any(not s for s in self.stop):
            raise ValueError("a stop string must not be empty")

    def generator(self) -> torch.Generator:
        generator = torch.Generator()
        if self.seed is None:
            generator.seed()
        else:
            generator.manual_seed(self.seed)
        return generator


class BatchDecoder:
    """Sampling for prompts of different lengths at once with the KV cache, one token per row a step.

    Prompts are left-padded to the longest: each row numbers its own positions from 0 and no query
    sees padding (GPT.forward's `positions` and `keep`). A row that `finish`es (it drew an end token,
    hit a stop string or its token budget) leaves the batch: its cache rows are dropped. Once the
    longest row reaches block_size the window slides and each step re-reads the last block_size tokens
    of every row, as `generate` does.
    """

    def __init__(self, model, prompts: list[list[int]], params: list[SamplingParams], pad_id: int = 0):
        if not getattr(model, "causal", True):
            raise ValueError("a masked-LM (bidirectional) model does not generate text left to right")
        if any(not p for p in prompts):
            raise ValueError("every prompt needs at least one token")
        self.model, self.params, self.pad_id = model, params, pad_id
        self.rows = [list(p) for p in prompts]
        self.generators = [p.generator() for p in params]
        self.active = list(range(len(prompts)))  # rows still generating, in cache order
        self.cache, self.keep, self.unpadded = None, None, False
        self.device = next(model.parameters()).device

    @property
    def done(self) -> bool:
        return not self.active

    def finish(self, row: int) -> None:
        """Take `row` out of the batch (from the next step on)."""
        if row in self.active:
            position = self.active.index(row)
            self.active.pop(position)
            if self.cache is not None:
                stay = torch.tensor([i for i in range(len(self.active) + 1) if i != position], dtype=torch.long,
                                    device=self.device)
                self.cache.keep_rows(stay)
                self.keep = self.keep[stay]

    @torch.no_grad()
    def step(self) -> dict[int, int]:
        """The next token of every active row: {row: token}; each is appended to its row."""
        if not self.active:
            return {}
        logits = self._next_logits()
        if all(self.params[row].temperature == 0 for row in self.active):  # greedy: one argmax for all
            drawn = logits.argmax(dim=-1).tolist()
        else:
            drawn = [int(sample_next(logits[i:i + 1], p.temperature, p.top_k, p.top_p, self.generators[row]))
                     for i, row in enumerate(self.active) for p in [self.params[row]]]
        for row, token in zip(self.active, drawn):
            self.rows[row].append(token)
        return dict(zip(self.active, drawn))

    def _next_logits(self) -> torch.Tensor:
        block = self.model.config.block_size
        if self.cache is not None and max(len(self.rows[r]) for r in self.active) <= block:
            last = torch.tensor([[self.rows[r][-1]] for r in self.active], device=self.device)
            positions = torch.tensor([[len(self.rows[r]) - 1] for r in self.active], device=self.device)
            self.keep = torch.cat([self.keep, torch.ones_like(last, dtype=torch.bool)], dim=1)
            keep = None if self.unpadded else self.keep  # no padding: plain attention over the cache
            return self.model(last, cache=self.cache, positions=positions, keep=keep)[0][:, -1]
        windows = [self.rows[r][-block:] for r in self.active]
        width = max(len(w) for w in windows)
        idx = torch.tensor([[self.pad_id] * (width - len(w)) + w for w in windows], device=self.device)
        self.keep = torch.tensor([[False] * (width - len(w)) + [True] * len(w) for w in windows], device=self.device)
        positions = (self.keep.cumsum(dim=1) - 1).clamp(min=0)
        self.unpadded = bool(self.keep.all())
        self.cache = self.model.new_cache(block) if width < block else None  # a full window: slide from now on
        return self.model(idx, cache=self.cache, positions=positions, keep=self.keep)[0][:, -1]


class TextStream:
    """Generated ids -> text as it becomes final: a stop string ends it (and is cut off), and text
    that may still turn into a stop string, or an incomplete UTF-8 character, is held back."""

    def __init__(self, decode, stop: tuple[str, ...] = ()):
        self.decode, self.stop = decode, stop
        self.ids: list[int] = []
        self.text, self.sent, self.stopped = "", 0, False

    def push(self, token: int) -> str:
        """Add a token; return the text that is now final (maybe "")."""
        self.ids.append(token)
        self.text = self.decode(self.ids)
        cut = min((i for i in (self.text.find(s, max(0, self.sent - len(s))) for s in self.stop) if i >= 0),
                  default=-1)
        if cut >= 0:
            self.text, self.stopped = self.text[:cut], True
            return self._send(len(self.text))
        return self._send(len(self.text) - self._held())

    def flush(self) -> str:
        """The rest of the text, once generation has ended."""
        return self._send(len(self.text))

    def _held(self) -> int:
        if self.text.endswith("\ufffd"):  # a character split across tokens: wait for its other bytes
            return len(self.text) - len(self.text.rstrip("\ufffd"))
        return max((n for s in self.stop for n in range(1, len(s)) if self.text.endswith(s[:n])), default=0)

    def _send(self, end: int) -> str:
        piece, self.sent = self.text[self.sent:max(end, self.sent)], max(end, self.sent)
        return piece


def stream_text(lm, prompt_ids: list[int], params: SamplingParams, ends: set[int]):
    """Yield the text of one continuation of `prompt_ids` as it becomes final (see TextStream)."""
    decoder = BatchDecoder(lm.model, [prompt_ids], [params], lm.pad or 0)
    stream = TextStream(lm.decode, params.stop)
    for _ in range(params.max_new_tokens):
        token = decoder.step()[0]
        if token in ends:
            break
        yield stream.push(token)
        if stream.stopped:
            return
    yield stream.flush()

