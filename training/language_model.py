"""A trained model ready to write text: the GPT, its tokenizer and how prompts and chats become ids.

Prompts are encoded as for generation everywhere in tokenmill: BOS + the prompt's tokens. A chat uses
the model's chat template when its tokenizer has the chat tokens (a fine-tuned model, see
training/finetune/template.py); otherwise the plain template

    [BOS] System: <text>\\n  User: <text>\\n  Assistant: <text>\\n  ...  Assistant:

(one line per message, no spaces between them), and the answer ends at a line starting "User:".
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer

from tokenmill.errors import UserError
from training.config import TrackingConfig
from training.finetune.template import CHAT_TOKENS, ChatTemplate
from training.model import GPT
from training.tokenizer import special_ids

PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
PLAIN_STOP = ("\nUser:",)


@dataclass
class LanguageModel:
    model: GPT
    tokenizer: Tokenizer
    name: str  # what was loaded (the SPEC), shown as the model's id

    def __post_init__(self) -> None:
        ids = special_ids(self.tokenizer)
        self.bos, self.eos, self.pad = ids["bos"], ids["eos"], ids["pad"]
        has_chat = all(self.tokenizer.token_to_id(t) is not None for t in CHAT_TOKENS)
        self.template = ChatTemplate(self.tokenizer) if has_chat else None

    @property
    def block_size(self) -> int:
        return self.model.config.block_size

    def encode_prompt(self, text: str) -> list[int]:
        """BOS + the prompt's tokens."""
        return ([self.bos] if self.bos is not None else []) + self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_chat(self, messages: list[dict]) -> list[int]:
        """The ids a model continues to answer the conversation `messages` ({"role", "content"} each)."""
        if self.template is not None:
            return self.template.prompt(messages)
        text = "".join(f"{PLAIN_ROLES[m['role']]}: {m['content']}\n" for m in messages)
        return self.encode_prompt(text + "Assistant:")

    def end_ids(self, chat: bool = False) -> set[int]:
        """Tokens that end generation: EOS; in a chat also the template's turn markers."""
        ends = {self.eos} if self.eos is not None else set()
        if chat and self.template is not None:
            ends |= set(self.template.ids.values())
        return ends

    def chat_stop(self) -> tuple[str, ...]:
        """Stop strings a chat answer ends at (the plain template's next user turn)."""
        return () if self.template is not None else PLAIN_STOP

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids)


def load_language_model(spec: str | Path, tracking: TrackingConfig, tokenizer_file: Path | None = None,
                        device: torch.device | str = "cpu") -> LanguageModel:
    """What `tokenmill evaluate --model` takes (a model directory, pre-trained or fine-tuned, LoRA merged on
    load; a .ckpt checkpoint; an MLflow run id, runs:/ID, models:/NAME@ALIAS or models:/NAME/VERSION), as
    `tokenmill export` reads it. `tokenizer_file`: the tokenizer of a checkpoint (which carries none;
    anything else is read with its own)."""
    from training.export import load_exportable

    own_tokenizer = Path(str(spec)).suffix != ".ckpt"
    with tempfile.TemporaryDirectory(prefix="tokenmill-model-") as workdir:
        model, tokenizer, _ = load_exportable(str(spec), tracking, Path(workdir),
                                              None if own_tokenizer else tokenizer_file)
    return _causal(LanguageModel(model.to(device).eval(), tokenizer, str(spec)))


def _causal(loaded: LanguageModel) -> LanguageModel:
    if not getattr(loaded.model, "causal", True):
        raise UserError(f"{loaded.name}: a masked-LM model does not generate text")
    if loaded.tokenizer.get_vocab_size() > loaded.model.vocab_size:
        raise UserError(f"{loaded.name}: its tokenizer has {loaded.tokenizer.get_vocab_size()} tokens, "
                        f"the model {loaded.model.vocab_size}")
    return loaded
