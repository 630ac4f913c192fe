"""A GPT in plain PyTorch (after nanoGPT): pre-norm blocks, SDPA attention, tied embeddings.

Causal (decoder-only, `train.objective: causal`) by default; `causal=False` gives the bidirectional
encoder of the masked-LM objective (same weights and shapes, attention without the causal mask).
A `KVCache` keeps each layer's keys and values so that generation feeds only the new token.
Rows of different lengths go in one batch left-padded: `positions` numbers each row's own tokens and
`keep` marks which keys are real (training/generate.py's BatchDecoder does this).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.config import ModelConfig


class KVCache:
    """Keys and values of the tokens seen so far, per layer: (B, n_head, T, head_dim) each.

    With a `capacity` (tokens), each layer's keys and values go into buffers of that length allocated
    once, instead of being concatenated anew at every step (a copy of the whole cache per token)."""

    def __init__(self, n_layer: int, capacity: int | None = None):
        self.layers: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * n_layer
        self.lengths = [0] * n_layer
        self.capacity = capacity

    def __len__(self) -> int:
        return self.length(len(self.layers) - 1)  # the last layer: complete once a forward pass is done

    def length(self, layer: int) -> int:
        return self.lengths[layer]

    def extend(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append this step's keys and values to layer `layer`'s; return all of them."""
        begin, end = self.lengths[layer], self.lengths[layer] + k.size(2)
        self.lengths[layer] = end
        if self.capacity is None or end > self.capacity:
            if self.layers[layer] is not None:
                past_k, past_v = self.layers[layer]
                k, v = torch.cat([past_k[:, :, :begin], k], dim=2), torch.cat([past_v[:, :, :begin], v], dim=2)
            self.layers[layer] = (k, v)
            return k, v
        if self.layers[layer] is None:
            shape = (k.size(0), k.size(1), self.capacity, k.size(3))
            self.layers[layer] = (k.new_empty(shape), v.new_empty(shape))
        buffer_k, buffer_v = self.layers[layer]
        buffer_k[:, :, begin:end], buffer_v[:, :, begin:end] = k, v
        return buffer_k[:, :, :end], buffer_v[:, :, :end]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows `rows` (indices) of every layer."""
        self.layers = [None if kv is None else (kv[0][rows], kv[1][rows]) for kv in self.layers]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention; causal unless `causal=False` (the masked-LM encoder)."""

    def __init__(self, config: ModelConfig, causal: bool = True):
        super().__init__()
        self.n_head, self.dropout, self.causal = config.n_head, config.dropout, causal
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.proj.residual = True  # scaled init: one of the two writes into the residual stream
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask` (B, 1, T, keys) True where a query may attend: replaces the causal mask when given."""
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        past = cache.length(layer) if cache is not None else 0
        if cache is not None:
            k, v = cache.extend(layer, k, v)
        is_causal = mask is None and self.causal and T > 1
        if is_causal and past:  # new queries see every cached key and the new keys up to themselves
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            is_causal = False
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.resid_dropout(self.proj(y.transpose(1, 2).reshape(B, T, C)))


def padding_mask(keep: torch.Tensor, past: int, T: int, causal: bool = True) -> torch.Tensor:
    """(B, 1, T, past + T) attention mask of T new queries over left-padded rows: a query sees the real
    keys (`keep`, (B, past + T)) up to itself. A padding query sees every key up to itself, so that no
    row of the softmax is empty (an empty one is NaN, and NaN times a zero weight still spreads)."""
    if T == 1:  # one new (real) token: it sees every real key
        return keep[:, None, None, :]
    allowed = torch.ones(T, past + T, dtype=torch.bool, device=keep.device)
    allowed = allowed.tril(diagonal=past) if causal else allowed
    padding_query = ~keep[:, past:, None]
    return (allowed & (keep[:, None, :] | padding_query))[:, None]


class MLP(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.proj.residual = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, config: ModelConfig, causal: bool = True):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, causal)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer, mask)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int, causal: bool = True):
        super().__init__()
        self.config, self.vocab_size, self.causal = config, vocab_size, causal
        self.wte = nn.Embedding(vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config, causal) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying: one matrix embeds and unembeds
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2 init: N(0, 0.02), residual projections scaled down by sqrt(2 * n_layer)."""
        if isinstance(module, nn.Linear):
            std = 0.02 / math.sqrt(2 * self.config.n_layer) if getattr(module, "residual", False) else 0.02
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, cache: KVCache | None = None,
                positions: torch.Tensor | None = None, keep: torch.Tensor | None = None):
        """Logits (B, T, vocab) and, with targets, the mean cross-entropy in nats over the targets that are
        not -100 (the masked-LM objective marks unmasked positions so). With `cache`, `idx` continues the
        cached tokens (positions count on from them) and the cache grows by T. For left-padded rows:
        `positions` (B, T) each token's position in its own row, `keep` (B, cached + T) False on padding."""
        past = len(cache) if cache is not None else 0
        T = idx.size(1)
        if past + T > self.config.block_size and positions is None:
            raise ValueError(f"sequence of {past + T} tokens is longer than block_size {self.config.block_size}")
        pos = torch.arange(past, past + T, device=idx.device) if positions is None else positions
        mask = None if keep is None else padding_mask(keep, past, T, self.causal)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer, mask)
        logits = self.lm_head(self.ln_f(x))
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)
        return logits, loss

    @classmethod
    def from_record(cls, record: dict, where: str = "model") -> "GPT":
        """A GPT in eval mode from a saved record: {"model_config", "vocab_size", "state_dict"} and the
        objective ("objective", or "train_config"["objective"]; causal when absent)."""
        from tokenmill.config import build

        objective = record.get("objective") or (record.get("train_config") or {}).get("objective", "causal")
        gpt = cls(build(ModelConfig, record["model_config"], f"{where}: model_config"), record["vocab_size"],
                  causal=objective != "masked")
        gpt.load_state_dict(record["state_dict"])
        return gpt.eval()

    def new_cache(self, capacity: int | None = None) -> KVCache:
        """An empty cache; with `capacity`, preallocated for that many tokens (at most block_size)."""
        return KVCache(self.config.n_layer, capacity)

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups: decay the Linear matrices; not biases, norms or the (tied) embeddings."""
        no_decay = {id(p) for m in self.modules() if isinstance(m, (nn.Embedding, nn.LayerNorm))
                    for p in m.parameters(recurse=False)}
        params = list(self.parameters())  # tied weights appear once
        decay = [p for p in params if p.dim() >= 2 and id(p) not in no_decay]
        rest = [p for p in params if p.dim() < 2 or id(p) in no_decay]
        return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None, top_p: float | None = None,
                 stop: int | None = None, use_cache: bool = True) -> torch.Tensor:
        """Append `max_new_tokens` sampled tokens to each row of `idx` (B, T); see training.generate."""
        from training.generate import generate

        return generate(self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                        generator=generator, stop=stop, use_cache=use_cache)
