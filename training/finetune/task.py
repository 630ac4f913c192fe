"""A checkable task: prompts with known answers, a checker named in params, and the held-out
exact-answer accuracy every policy stage reports (`held_out_accuracy` in its stats.json).

Prompt lines are `{"prompt": str, "answer": str}` (`answer` only where a checker reads it; `lang`
optional, for the per-language figures; other fields ignored). A checker is any Python callable
`check(response: str, answer: str) -> bool | float` named as `module:function`, e.g.
`examples.finetune.arith:check`.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from tokenmill.errors import UserError
from training.finetune.config import TaskConfig
from training.finetune.data import _text, read_jsonl
from training.finetune.template import ChatTemplate


@dataclass
class Prompt:
    messages: list[dict]  # the conversation before the answer
    answer: str | None  # what a checker compares the response with
    lang: str | None
    where: str  # "file:line"
    key: str  # content hash: decides the held-out split


def load_prompts(path: Path, need_answer: bool = False) -> list[Prompt]:
    prompts = []
    for where, key, obj in read_jsonl(path):
        answer = _text(obj, "answer", where) if need_answer or "answer" in obj else None
        lang = obj.get("lang") if isinstance(obj.get("lang"), str) else None
        prompts.append(Prompt([{"role": "user", "content": _text(obj, "prompt", where)}], answer, lang, where, key))
    if not prompts:
        raise UserError(f"{path}: no prompts")
    return prompts


def load_callable(name: str, where: str) -> Callable:
    """The function `module:function` names. Project code (e.g. examples/) is found from the working
    directory, as `python -m` finds it, also when the `tokenmill` script runs from elsewhere on PATH."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise UserError(f"{where}: '{name}' is not module:function")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        if os.getcwd() in sys.path:
            raise UserError(f"{where}: no module '{module_name}'") from None
        sys.path.insert(0, os.getcwd())
        return load_callable(name, where)
    function = getattr(module, attr, None)
    if not callable(function):
        raise UserError(f"{where}: module '{module_name}' has no function '{attr}'")
    return function


@torch.no_grad()
def complete(policy, prompts: list[list[int]], end_id: int, max_new_tokens: int, device: torch.device,
             temperature: float = 0.0, generator: torch.Generator | None = None) -> list[list[int]]:
    """Each prompt's response ids, up to and including the first <|end|> (or max_new_tokens ids).
    Prompts of one length share a batch (the model's KV-cache generate; no padding needed)."""
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, prompt in enumerate(prompts):
        by_length[len(prompt)].append(i)
    responses: list[list[int]] = [[] for _ in prompts]
    for length, rows in sorted(by_length.items()):
        room = min(max_new_tokens, policy.config.block_size - length)
        idx = torch.tensor([prompts[i] for i in rows], dtype=torch.long, device=device)
        out = policy.generate(idx, room, temperature=temperature, generator=generator, stop=end_id)[:, length:]
        for i, row in zip(rows, out.tolist()):
            responses[i] = row[: row.index(end_id) + 1] if end_id in row else row
    return responses


def accuracy(policy, template: ChatTemplate, task: TaskConfig, device: torch.device) -> dict:
    """Exact-answer accuracy of the greedy answers to the task's held-out prompts, overall and per
    language; None when no task is configured or its file is absent."""
    if not task.held_out or not Path(task.held_out).is_file():
        if task.held_out:
            print(f"finetune: no task prompts at {task.held_out}; held_out_accuracy not measured", file=sys.stderr)
        return {"held_out_accuracy": None}
    prompts = load_prompts(Path(task.held_out), need_answer=True)
    check = load_callable(task.checker, "finetune.task.checker")
    was_training = policy.training
    policy.eval()
    responses = complete(policy, [template.prompt(p.messages) for p in prompts], template.end_id,
                         task.max_new_tokens, device)
    policy.train(was_training)
    scores = [float(check(template.decode(r), p.answer)) for p, r in zip(prompts, responses)]
    by_lang: dict[str, list[float]] = defaultdict(list)
    for prompt, score in zip(prompts, scores):
        by_lang[prompt.lang or "all"].append(score)
    return {"held_out_accuracy": sum(scores) / len(scores), "held_out_prompts": len(scores),
            "held_out_accuracy_by_lang": {k: sum(v) / len(v) for k, v in sorted(by_lang.items())}}
