"""What PPO and GRPO share: prompts, sampled responses, their per-token log-probabilities, the KL to
the frozen base, rewards (a reward model or a checker), the clipped policy loss, the held-out
evaluation and the loop around a stage's `step`.

Rollout tensors are response-aligned: row b, column j is the j-th response token of row b, so the
prompt lengths never matter after sampling; `mask` is 1 on real response tokens (<|end|> included).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from tokenmill.errors import UserError
from tokenmill.progress import progress
from training.finetune.data import Encoded, _check_prompt
from training.finetune.dpo import load_judge
from training.finetune.loop import batches
from training.finetune.registry import FinetuneStage, Session
from training.finetune.task import Prompt, complete, load_callable, load_prompts


@dataclass
class RlPrompt:
    ids: list[int]  # the templated prompt, ending with <|assistant|>
    record: Prompt


@dataclass
class Rollout:
    prompts: list[list[int]]
    responses: list[list[int]]
    records: list[Prompt]
    ids: torch.Tensor  # (B, T) prompt + response, right-padded
    positions: torch.Tensor  # (B, L) index into the logits of ids[:, :-1] that predicts response token j
    tokens: torch.Tensor  # (B, L) response tokens (padding where mask is 0)
    mask: torch.Tensor  # (B, L) float


class RlStage(FinetuneStage):
    """A stage trained on prompts by sampling: data is a prompt file (finetune.rl.prompts)."""
    data_default, base_default = "rl.prompts", "sft_model"
    gate = ("val_reward", True)

    def load(self, path: Path) -> list:
        return load_prompts(path)

    def encode(self, records: list, template, block_size: int) -> list:
        encoded = []
        for record in records:
            ids = template.prompt(record.messages)
            _check_prompt(len(ids), block_size, record.where)
            encoded.append(RlPrompt(ids, record))
        return encoded

    def refusal(self, summary: dict, config) -> str | None:
        kl = summary.get("val_kl")
        if kl is not None and not kl <= config.rl.max_kl:
            return f"val_kl {kl:.4g} exceeds finetune.rl.max_kl {config.rl.max_kl:g}"
        return None


def pack(prompts: list[list[int]], responses: list[list[int]], records: list, pad: int,
         device: torch.device) -> Rollout:
    width, longest = max(len(p) + len(r) for p, r in zip(prompts, responses)), max(map(len, responses))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    positions = torch.zeros(len(prompts), longest, dtype=torch.long)
    tokens = torch.full((len(prompts), longest), pad, dtype=torch.long)
    mask = torch.zeros(len(prompts), longest)
    for b, (p, r) in enumerate(zip(prompts, responses)):
        ids[b, : len(p) + len(r)] = torch.tensor(p + r)
        positions[b] = torch.arange(longest).clamp(max=len(r) - 1) + len(p) - 1
        tokens[b, : len(r)], mask[b, : len(r)] = torch.tensor(r), 1.0
    return Rollout(prompts, responses, records, ids.to(device), positions.to(device), tokens.to(device),
                   mask.to(device))


def response_logits(model, rollout: Rollout) -> torch.Tensor:
    """(B, L, V) logits of the response tokens."""
    logits, _ = model(rollout.ids[:, :-1])
    index = rollout.positions.unsqueeze(-1).expand(-1, -1, logits.size(-1))
    return torch.gather(logits, 1, index).float()


def token_logps(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return torch.gather(F.log_softmax(logits, dim=-1), 2, tokens.unsqueeze(-1)).squeeze(-1)


def entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(-1)


def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """KL(policy || reference) of each position's next-token distribution, in nats: (B, L)."""
    logp, ref_logp = F.log_softmax(logits, dim=-1), F.log_softmax(ref_logits, dim=-1)
    return (logp.exp() * (logp - ref_logp)).sum(-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def clipped_policy_loss(logps, old_logps, advantages, mask, clip: float) -> tuple[torch.Tensor, float]:
    """(PPO's clipped surrogate loss, share of tokens whose ratio was clipped)."""
    ratio = torch.exp(logps - old_logps)
    loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip))
    clipped = ((ratio - 1).abs() > clip).float()
    return masked_mean(loss, mask), float(masked_mean(clipped, mask))


def sample(policy, prompts: list[RlPrompt], session: Session, generator: torch.Generator) -> Rollout:
    policy.eval()
    rl, template = session.config.rl, session.template
    ids = [p.ids for p in prompts]
    responses = complete(policy, ids, template.end_id, rl.max_new_tokens, session.device, rl.temperature, generator)
    return pack(ids, responses, [p.record for p in prompts], template.end_id, session.device)


def reward_function(spec: str, session: Session, where: str) -> Callable[["Rollout"], torch.Tensor]:
    """Scores (B,) of a rollout's responses: from the reward model when `spec` is a directory, else from
    the checker `spec` names (module:function)."""
    return model_scorer(Path(spec), session) if Path(spec).is_dir() else checker_scorer(spec, session, where)


def model_scorer(path: Path, session: Session) -> Callable[["Rollout"], torch.Tensor]:
    """The reward model at `path` scoring prompt + response + <|end|> (added where sampling ran out)."""
    judge = load_judge(path, session.tokenizer).to(session.device)
    end = session.template.end_id

    @torch.no_grad()
    def score(rollout: Rollout) -> torch.Tensor:
        answers = [r + ([] if r[-1:] == [end] else [end]) for r in rollout.responses]
        rows = [Encoded(p + a, [0] * len(p) + [1] * len(a), "rollout") for p, a in zip(rollout.prompts, answers)]
        return judge.score(rows, end, session.device).float()
    return score


def checker_scorer(spec: str, session: Session, where: str) -> Callable[["Rollout"], torch.Tensor]:
    """A verifiable reward: check(response text, the prompt's answer) -> bool or float."""
    check = load_callable(spec, where)

    def score(rollout: Rollout) -> torch.Tensor:
        missing = next((r.where for r in rollout.records if r.answer is None), None)
        if missing:
            raise UserError(f"{missing}: field 'answer' is missing (the checker {spec} compares with it)")
        return torch.tensor([float(check(session.template.decode(r), rec.answer))
                             for r, rec in zip(rollout.responses, rollout.records)], device=session.device)
    return score


def subset(rollout: Rollout, index: torch.Tensor) -> Rollout:
    rows = index.tolist()
    return Rollout([rollout.prompts[i] for i in rows], [rollout.responses[i] for i in rows],
                   [rollout.records[i] for i in rows], rollout.ids[index], rollout.positions[index],
                   rollout.tokens[index], rollout.mask[index])


@torch.no_grad()
def evaluate(policy, reference, prompts: list[RlPrompt], session: Session, score) -> dict:
    """Greedy answers to the held-out prompts: mean reward, mean KL to the reference per response
    (summed over its tokens, exact over the vocabulary) and mean response length."""
    if not prompts:
        return {"reward": float("nan"), "kl": float("nan"), "length": float("nan")}
    policy.eval()
    ids = [p.ids for p in prompts]
    responses = complete(policy, ids, session.template.end_id, session.config.rl.max_new_tokens, session.device)
    rollout = pack(ids, responses, [p.record for p in prompts], session.template.end_id, session.device)
    kl = (exact_kl(response_logits(policy, rollout), response_logits(reference, rollout)) * rollout.mask).sum(1)
    return {"reward": float(score(rollout).mean()), "kl": float(kl.mean()), "length": float(rollout.mask.sum(1).mean())}


def fit_rl(session: Session, groups: list[dict], prompts: list[RlPrompt], prompts_per_step: int,
           step: Callable, held_out: Callable[[], dict], desc: str) -> dict:
    """The RL loop: each step samples prompts (a seeded permutation, epoch after epoch) and calls
    `step(batch, optimizer) -> (figures, rollout samples)`; held-out figures before, every eval_every
    steps and at the end. Learning rate rl.lr after a linear warmup of finetune.warmup_steps (a group
    with its own "peak_lr", e.g. PPO's value head, warms up to that instead)."""
    config, rl = session.config, session.config.rl
    optimizer = torch.optim.AdamW(groups, lr=rl.lr, betas=(0.9, 0.95))
    history: dict[str, list] = {"train": [], "val": [{"step": 0, **held_out()}], "samples": []}
    order = batches(len(prompts), min(prompts_per_step, len(prompts)), config.seed)
    for number in progress(range(1, rl.steps + 1), desc=desc, unit="step"):
        for group in optimizer.param_groups:
            group["lr"] = group.get("peak_lr", rl.lr) * min(1.0, number / max(1, config.warmup_steps))
        figures, samples = step([prompts[i] for i in next(order)], optimizer)
        history["train"].append({"step": number, **figures})
        if number % rl.sample_every == 0 or number == 1:
            history["samples"] += [{"step": number, **s} for s in samples]
        if number % config.eval_every == 0 or number == rl.steps:
            history["val"].append({"step": number, **held_out()})
    return history


def optimizer_step(loss: torch.Tensor, optimizer, grad_clip: float) -> None:
    """Backward, clip, step. Groups marked "clip_apart" (PPO's value head) are clipped on their own, so
    the value loss's large gradients do not scale the policy's down."""
    loss.backward()
    if grad_clip:
        for apart in (False, True):
            params = [p for g in optimizer.param_groups if g.get("clip_apart", False) == apart for p in g["params"]]
            if params:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def samples_of(rollout: Rollout, scores: torch.Tensor, session: Session, n: int = 2) -> list[dict]:
    decode = session.template.decode
    return [{"prompt": decode(p), "response": decode(r), "reward": float(s)}
            for p, r, s in list(zip(rollout.prompts, rollout.responses, scores.tolist()))[:n]]


def rl_summary(history: dict, steps: int) -> dict:
    first, final = history["val"][0], history["val"][-1]
    return {"steps": steps, "val_reward": final["reward"], "val_reward_before": first["reward"],
            "val_kl": final["kl"], "val_kl_before": first["kl"], "val_length": final["length"]}
