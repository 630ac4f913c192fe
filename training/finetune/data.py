"""Fine-tuning data: JSONL loaders with one-line errors, the held-out split, encoding and batches.

SFT lines are `{"prompt": str, "response": str}` or `{"messages": [{"role", "content"}, ...]}`
(roles system/user/assistant, ending with an assistant turn). Preference lines are
`{"prompt": str, "chosen": str, "rejected": str}` or `{"prompt": str, "ranking": [best, ..., worst]}`,
a ranking of n answers expanding into its n(n-1)/2 (better, worse) pairs. Any other field is ignored.

Batches are padded, not packed: one example per row, right-padded to the longest row of the batch,
pad positions excluded from every loss, so no example attends to another.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from tokenmill.documents import json_object
from tokenmill.errors import UserError
from training.finetune.template import ROLE_TOKENS, ChatTemplate

IGNORE = -100  # target id that cross-entropy skips


@dataclass
class Conversation:
    messages: list[dict]  # the chat; every assistant turn is trained on
    where: str  # "file:line", for error messages
    key: str  # content hash: decides the held-out split


@dataclass
class Preference:
    prompt: list[dict]  # the conversation before the answer
    chosen: str
    rejected: str
    where: str
    key: str  # pairs of one ranking share the key, so they fall on the same side of the split


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_jsonl(path: Path) -> Iterator[tuple[str, str, dict]]:
    """("file:line", content hash, object) for every non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: data file not found")
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            obj = json_object(line, where)
            yield where, hashlib.sha256(line.strip().encode("utf-8")).hexdigest(), obj


def _text(obj: dict, name: str, where: str) -> str:
    if name not in obj:
        raise UserError(f"{where}: missing field '{name}'")
    value = obj[name]
    if not isinstance(value, str):
        raise UserError(f"{where}: field '{name}' must be a string, got {type(value).__name__}")
    if not value.strip():
        raise UserError(f"{where}: field '{name}' is empty")
    return value


def _messages(obj: dict, where: str) -> list[dict]:
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise UserError(f"{where}: field 'messages' must be a non-empty list")
    for i, message in enumerate(messages):
        at = f"{where}: messages[{i}]"
        if not isinstance(message, dict) or message.get("role") not in ROLE_TOKENS:
            raise UserError(f"{at}: needs a 'role' of {', '.join(ROLE_TOKENS)}")
        _text(message, "content", at)
    if messages[-1]["role"] != "assistant":
        raise UserError(f"{where}: the last message must be the assistant's (it is what is trained on)")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def load_sft(path: Path) -> list[Conversation]:
    examples = []
    for where, key, obj in read_jsonl(path):
        if "messages" in obj:
            messages = _messages(obj, where)
        else:
            messages = [{"role": "user", "content": _text(obj, "prompt", where)},
                        {"role": "assistant", "content": _text(obj, "response", where)}]
        examples.append(Conversation(messages, where, key))
    if not examples:
        raise UserError(f"{path}: no examples")
    return examples


def load_preferences(path: Path) -> list[Preference]:
    pairs = []
    for where, key, obj in read_jsonl(path):
        prompt = [{"role": "user", "content": _text(obj, "prompt", where)}]
        if "ranking" in obj:
            ranking = obj["ranking"]
            if not isinstance(ranking, list) or len(ranking) < 2:
                raise UserError(f"{where}: field 'ranking' must list at least two answers, best first")
            answers = [_text({"ranking": a}, "ranking", where) for a in ranking]
            if len(set(answers)) < len(answers):
                raise UserError(f"{where}: field 'ranking' repeats an answer")
            pairs += [Preference(prompt, answers[i], answers[j], where, key)
                      for i in range(len(answers)) for j in range(i + 1, len(answers))]
        else:
            chosen, rejected = _text(obj, "chosen", where), _text(obj, "rejected", where)
            if chosen == rejected:
                raise UserError(f"{where}: 'chosen' and 'rejected' are the same answer")
            pairs.append(Preference(prompt, chosen, rejected, where, key))
    if not pairs:
        raise UserError(f"{path}: no preference pairs")
    return pairs


def split_held_out(items: list, val_fraction: float, seed: int) -> tuple[list, list]:
    """(train, held-out) by a hash of each item's content key: stable as the file grows. With two or
    more distinct keys and val_fraction > 0 both sides get at least one key; one key stays in train."""
    def score(key: str) -> float:
        return int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big") / 2**64

    keys = sorted({item.key for item in items}, key=score)
    held = {k for k in keys if score(k) < val_fraction}
    if val_fraction > 0 and len(keys) >= 2 and not held:
        held = {keys[0]}
    if keys and len(held) == len(keys):  # something must be left to train on
        held.discard(keys[-1])
    return [i for i in items if i.key not in held], [i for i in items if i.key in held]


def held_out_digest(items: list) -> str:
    """Identity of a held-out set (its content keys): registry figures compare only on the same one."""
    return hashlib.sha256("\n".join(sorted({i.key for i in items})).encode()).hexdigest()[:16]


@dataclass
class Encoded:
    ids: list[int]
    mask: list[int]  # 1 where the token is trained on (or scored)
    where: str


def _check_prompt(prompt_len: int, block_size: int, where: str) -> None:
    if prompt_len >= block_size:
        raise UserError(f"{where}: prompt is {prompt_len} tokens with the chat template, "
                        f"longer than the model's context of {block_size}")


def encode_sft(examples: list[Conversation], template: ChatTemplate, block_size: int) -> list[Encoded]:
    """Templated ids and masks, cut to block_size + 1 tokens (inputs and shifted targets)."""
    encoded = []
    for example in examples:
        ids, mask = template.encode(example.messages)
        _check_prompt(mask.index(1), block_size, example.where)
        encoded.append(Encoded(ids[: block_size + 1], mask[: block_size + 1], example.where))
    return encoded


def encode_pairs(pairs: list[Preference], template: ChatTemplate, block_size: int) -> list[tuple[Encoded, Encoded]]:
    """(chosen, rejected) sequences: prompt + answer + <|end|>, mask on the answer, cut to block_size
    + 1 tokens (a log-probability needs the token before each scored one)."""
    encoded = []
    for pair in pairs:
        prompt = template.prompt(pair.prompt)
        _check_prompt(len(prompt), block_size, pair.where)
        sides = []
        for answer in (pair.chosen, pair.rejected):
            response = template.text_ids(answer) + [template.end_id]
            ids = (prompt + response)[: block_size + 1]
            sides.append(Encoded(ids, ([0] * len(prompt) + [1] * len(response))[: len(ids)], pair.where))
        encoded.append(tuple(sides))
    return encoded


def truncated(encoded: list[Encoded], template: ChatTemplate) -> int:
    """How many sequences lost their ending to the context length."""
    return sum(e.ids[-1] != template.end_id for e in encoded)


def lm_batch(rows: list[Encoded], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets) for next-token loss; targets are IGNORE outside the mask and on padding."""
    width = max(len(r.ids) for r in rows) - 1
    x = torch.full((len(rows), width), pad_id, dtype=torch.long)
    y = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, r in enumerate(rows):
        ids, mask = torch.tensor(r.ids), torch.tensor(r.mask)
        x[i, : len(ids) - 1] = ids[:-1]
        y[i, : len(ids) - 1] = torch.where(mask[1:] == 1, ids[1:], IGNORE)
    return x, y


def last_token_batch(rows: list[Encoded], pad_id: int, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, index of each row's last token) for a score read at the end of the sequence."""
    rows_ids = [r.ids[:block_size] for r in rows]
    x = torch.full((len(rows), max(map(len, rows_ids))), pad_id, dtype=torch.long)
    for i, ids in enumerate(rows_ids):
        x[i, : len(ids)] = torch.tensor(ids)
    return x, torch.tensor([len(ids) - 1 for ids in rows_ids])
