"""The chat template: special tokens around each turn, and the tokenizer/embedding growth they need.

A conversation becomes one id sequence:

    [BOS] <|system|> text <|end|>  <|user|> text <|end|>  <|assistant|> text <|end|>  ...

(BOS when the base tokenizer has one, as every pre-training document starts with it.)

Turn markers are added to the tokenizer's vocabulary after its last id, so every id of the base
model keeps its meaning; the embedding matrix grows by as many rows (initialised to the mean of the
existing rows). The template joins ids, never strings, and the markers are vocabulary entries that no
text encodes to: a literal "<|user|>" typed in a prompt stays text. Only assistant text and the <|end|> closing it are
trained on (`mask`), so the model learns to answer and to stop, not to predict the user.
"""

from __future__ import annotations

import json

import torch
from tokenizers import Tokenizer

from training.model import GPT
from training.tokenizer import special_ids

SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
CHAT_TOKENS = (SYSTEM, USER, ASSISTANT, END)
ROLE_TOKENS = {"system": SYSTEM, "user": USER, "assistant": ASSISTANT}


def add_chat_tokens(tokenizer: Tokenizer) -> tuple[Tokenizer, list[str]]:
    """(tokenizer with the chat tokens, the ones that were missing). Missing tokens become vocabulary
    entries after the last id, never "added tokens" (which are matched in raw text): like the base
    tokenizer's BOS/EOS, a marker is only ever produced by the template, never by encoding text, and
    tokenizer.json alone carries that behaviour."""
    missing = [t for t in CHAT_TOKENS if tokenizer.token_to_id(t) is None]
    if not missing:
        return tokenizer, []
    data = json.loads(tokenizer.to_str())
    vocab = data["model"]["vocab"]
    next_id = max([*vocab.values(), *(t["id"] for t in data.get("added_tokens") or [])]) + 1
    for offset, token in enumerate(missing):
        vocab[token] = next_id + offset
    return Tokenizer.from_str(json.dumps(data, ensure_ascii=False)), missing


def resize_vocab(model: GPT, vocab_size: int) -> GPT:
    """A GPT of the same shape with `vocab_size` embedding rows: the old rows copied, new rows the
    mean of the old ones (a neutral start), the output head still tied to the embedding."""
    if vocab_size == model.vocab_size:
        return model
    if vocab_size < model.vocab_size:
        raise ValueError(f"cannot shrink the vocabulary from {model.vocab_size} to {vocab_size}")
    state = model.state_dict()
    old = state["wte.weight"]
    new_rows = old.mean(dim=0, keepdim=True).expand(vocab_size - old.size(0), -1)
    state["wte.weight"] = state["lm_head.weight"] = torch.cat([old, new_rows])
    resized = GPT(model.config, vocab_size)
    resized.load_state_dict(state)
    return resized.train(model.training)


class ChatTemplate:
    def __init__(self, tokenizer: Tokenizer, system_prompt: str | None = None):
        self.tokenizer, self.system_prompt = tokenizer, system_prompt
        self.ids = {t: tokenizer.token_to_id(t) for t in CHAT_TOKENS}
        if None in self.ids.values():
            raise ValueError("the tokenizer lacks the chat tokens: call add_chat_tokens first")
        self.end_id = self.ids[END]
        self.bos_id = special_ids(tokenizer)["bos"]  # documents began with BOS in pre-training: so do chats

    def text_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode(self, messages: list[dict]) -> tuple[list[int], list[int]]:
        """(ids, mask) of a conversation; mask is 1 on assistant text and its closing <|end|>."""
        ids, mask = ([self.bos_id], [0]) if self.bos_id is not None else ([], [])
        if self.system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": self.system_prompt}, *messages]
        for message in messages:
            content = self.text_ids(message["content"]) + [self.end_id]
            trained = 1 if message["role"] == "assistant" else 0
            ids += [self.ids[ROLE_TOKENS[message["role"]]], *content]
            mask += [0] + [trained] * len(content)
        return ids, mask

    def prompt(self, messages: list[dict]) -> list[int]:
        """The ids a model continues to answer: the conversation so far, then <|assistant|>."""
        return self.encode(messages)[0] + [self.ids[ASSISTANT]]

    def decode(self, ids: list[int]) -> str:
        """Text of generated ids up to the first <|end|>, markers dropped."""
        if self.end_id in ids:
            ids = ids[: ids.index(self.end_id)]
        markers = set(self.ids.values()) | {i for i in special_ids(self.tokenizer).values() if i is not None}
        return self.tokenizer.decode([i for i in ids if i not in markers], skip_special_tokens=True)
