"""The task hook every policy stage reports: batched greedy completion (prompts grouped by length)
answers as one prompt at a time does, held-out accuracy overall and per language, checkers by name."""

from pathlib import Path

import pytest
import torch

from tokenmill.errors import UserError
from training.finetune.config import TaskConfig
from training.finetune.model_dir import load_policy
from training.finetune.task import accuracy, complete, load_callable
from training.finetune.template import ChatTemplate, add_chat_tokens, resize_vocab

HELD_OUT = Path(__file__).resolve().parents[3] / "examples" / "finetune" / "arith" / "held_out.jsonl"


@pytest.fixture(scope="module")
def policy(base_dir):
    gpt, tokenizer, _ = load_policy(base_dir)
    tokenizer, _ = add_chat_tokens(tokenizer)
    return resize_vocab(gpt, tokenizer.get_vocab_size()).eval(), ChatTemplate(tokenizer)


def test_batched_completion_equals_one_prompt_at_a_time(policy):
    gpt, template = policy
    prompts = [template.prompt([{"role": "user", "content": text}]) for text in ("Is it?", "Pliki są w etc?", "ok")]
    assert len({len(p) for p in prompts}) > 1  # several lengths: several batches
    together = complete(gpt, prompts, template.end_id, 6, torch.device("cpu"))
    assert together == [complete(gpt, [p], template.end_id, 6, torch.device("cpu"))[0] for p in prompts]
    assert all(1 <= len(r) <= 6 for r in together)


def test_held_out_accuracy_per_language(policy):
    gpt, template = policy
    result = accuracy(gpt, template, TaskConfig(held_out=str(HELD_OUT), max_new_tokens=3), torch.device("cpu"))
    assert result["held_out_prompts"] == 150 and 0 <= result["held_out_accuracy"] <= 1
    assert set(result["held_out_accuracy_by_lang"]) == {"en", "fa", "pl"}
    assert accuracy(gpt, template, TaskConfig(held_out=None), torch.device("cpu")) == {"held_out_accuracy": None}


def test_checkers_are_named_module_function():
    assert load_callable("finetune_samples:brevity", "x")("", "") == 1.0
    for name, message in (("nocolon", "is not module:function"), ("nowhere:f", "no module 'nowhere'"),
                          ("finetune_samples:nothing", "has no function 'nothing'")):
        with pytest.raises(UserError, match=f"^params: .*{message}"):
            load_callable(name, "params")
