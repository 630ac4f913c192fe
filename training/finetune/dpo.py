"""Direct preference optimisation (Rafailov et al., 2023) against a frozen reference model.

The implicit reward of an answer y to prompt x is beta * (log pi(y|x) - log ref(y|x)), summed over
the answer's tokens; the loss is -log sigmoid(reward(chosen) - reward(rejected)). The reported
margin is that reward difference, the accuracy the share of pairs where it is positive.

With dpo.sft_weight > 0 the loss adds that weight times the chosen answers' mean per-token negative
log-likelihood (RPO, Pang et al., 2024): plain DPO can lower the chosen answer's likelihood along with
the rejected one's (only their difference is trained), which on a task with one right answer lowers
the greedy accuracy; the NLL term keeps the chosen answer likely.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from tokenmill.errors import UserError
from training.finetune.data import IGNORE, Encoded, lm_batch
from training.finetune.lora import trainable
from training.finetune.loop import fit
from training.finetune.model_dir import load_reward
from training.finetune.registry import Session, register_stage
from training.finetune.reward import PairStage
from training.finetune.template import ChatTemplate


def sequence_logps(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each row's target tokens (those not IGNORE): shape (B,)."""
    logits, _ = model(x)
    mask = y != IGNORE
    logps = torch.gather(F.log_softmax(logits.float(), dim=-1), 2, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logps * mask).sum(dim=-1)


def pair_logps(model, pairs: list[tuple[Encoded, Encoded]], pad_id: int, device: torch.device,
               counts: bool = False):
    """(chosen, rejected) summed log-probabilities, from one forward pass over both sides; with
    `counts`, also the number of chosen answer tokens in the batch."""
    x, y = (t.to(device) for t in lm_batch([c for c, _ in pairs] + [r for _, r in pairs], pad_id))
    chosen, rejected = sequence_logps(model, x, y).chunk(2)
    return (chosen, rejected, int((y[:len(pairs)] != IGNORE).sum())) if counts else (chosen, rejected)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """(loss, margins): margins are beta * ((pi_c - ref_c) - (pi_r - ref_r)) per pair."""
    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margins).mean(), margins


def batch_loss(policy, reference, pairs, pad_id: int, beta: float, device: torch.device, sft_weight: float = 0.0):
    with torch.no_grad():
        ref_c, ref_r = pair_logps(reference, pairs, pad_id, device)
    pol_c, pol_r, chosen_tokens = pair_logps(policy, pairs, pad_id, device, counts=True)
    loss, margins = dpo_loss(pol_c, pol_r, ref_c, ref_r, beta)
    nll = -pol_c.sum() / max(1, chosen_tokens)
    if sft_weight:
        loss = loss + sft_weight * nll
    margins = margins.detach()
    return loss, {"margin": float(margins.mean()), "accuracy": float((margins > 0).float().mean()),
                  "chosen_nll": float(nll.detach())}


@torch.no_grad()
def held_out_margins(policy, reference, pairs, pad_id: int, beta: float, device: torch.device,
                     batch_size: int) -> dict:
    """Mean implicit-reward margin, share of pairs with a positive margin, chosen and rejected rewards."""
    margins, chosen, rejected = [], [], []
    for start in range(0, len(pairs), batch_size):
        part = pairs[start:start + batch_size]
        pol_c, pol_r = pair_logps(policy, part, pad_id, device)
        ref_c, ref_r = pair_logps(reference, part, pad_id, device)
        chosen.append(beta * (pol_c - ref_c))
        rejected.append(beta * (pol_r - ref_r))
        margins.append(chosen[-1] - rejected[-1])
    if not margins:
        return {"loss": float("nan"), "margin": float("nan"), "accuracy": float("nan"), "pairs": 0}
    margins, chosen, rejected = torch.cat(margins), torch.cat(chosen), torch.cat(rejected)
    return {"loss": float(-F.logsigmoid(margins).mean()), "margin": float(margins.mean()),
            "accuracy": float((margins > 0).float().mean()), "chosen_reward": float(chosen.mean()),
            "rejected_reward": float(rejected.mean()), "pairs": len(pairs)}


@torch.no_grad()
def answer(model, prompt: list[int], template: ChatTemplate, max_new_tokens: int, device: torch.device) -> Encoded:
    """The greedy answer to `prompt` as prompt + answer + <|end|> (mask on the answer), cut to the
    context. A plain loop over full forward passes: answers are short, and it works for any model
    that maps ids to logits."""
    ids, room = list(prompt), model.config.block_size - len(prompt) - 1
    for _ in range(min(max_new_tokens, room)):
        logits, _ = model(torch.tensor([ids], dtype=torch.long, device=device))
        token = int(logits[0, -1].argmax())
        if token == template.end_id:
            break
        ids.append(token)
    ids.append(template.end_id)
    return Encoded(ids, [0] * len(prompt) + [1] * (len(ids) - len(prompt)), "generated")


@torch.no_grad()
def win_rate(policy, reference, reward_model, prompts: list[list[int]], template: ChatTemplate,
             max_new_tokens: int, device: torch.device) -> dict:
    """Share of held-out prompts whose greedy policy answer the reward model scores above the
    reference's answer (a tie counts one half), and both mean rewards."""
    policy_rows = [answer(policy, p, template, max_new_tokens, device) for p in prompts]
    reference_rows = [answer(reference, p, template, max_new_tokens, device) for p in prompts]
    pad = template.end_id
    policy_r = reward_model.score(policy_rows, pad, device)
    reference_r = reward_model.score(reference_rows, pad, device)
    wins = (policy_r > reference_r).float() + 0.5 * (policy_r == reference_r).float()
    return {"win_rate": float(wins.mean()), "policy_reward": float(policy_r.mean()),
            "reference_reward": float(reference_r.mean()), "prompts": len(prompts),
            "examples": [{"policy": template.decode(p.ids[len(q):]), "reference": template.decode(r.ids[len(q):])}
                         for p, r, q in list(zip(policy_rows, reference_rows, prompts))[:3]]}


@register_stage
class DpoStage(PairStage):
    """DPO against the frozen base (the SFT model); judged by the held-out implicit-reward margin."""
    name, help = "dpo", "direct preference optimisation against the SFT model (finetune.preference_data)"
    base_default, gate = "sft_model", ("val_margin", True)

    def train(self, session: Session, train_items: list, val_items: list):
        gpt, config, device, pad = session.gpt, session.config, session.device, session.template.end_id
        reference = copy.deepcopy(gpt).eval().requires_grad_(False)
        beta = config.dpo.beta
        history = fit(gpt, trainable(gpt, config, session.first_new), train_items,
                      lambda b: batch_loss(gpt, reference, b, pad, beta, device, config.dpo.sft_weight),
                      lambda: held_out_margins(gpt, reference, val_items, pad, beta, device, config.batch_size),
                      config, device, "finetune dpo")
        final = history["val"][-1]
        extra = {"val_margin": final["margin"], "val_margin_before": history["val"][0]["margin"],
                 "val_accuracy": final["accuracy"], "held_out_pairs": final["pairs"]}
        extra.update(self.win_rate(session, reference, val_items))
        return history, extra, gpt

    def win_rate(self, session: Session, reference, val_items: list) -> dict:
        """Held-out win rate of the policy over the reference, judged by the reward model (if there is one)."""
        judge = session.reward_model or session.config.dpo.reward_model
        if not judge or not (Path(judge) / "reward.pt").is_file():
            print(f"finetune dpo: no reward model at {judge}; win rate not measured", file=sys.stderr)
            return {"win_rate": None}
        judge_model = load_judge(Path(judge), session.tokenizer)
        prompts = [list(p) for p in {tuple(c.ids[: c.mask.index(1)]): None for c, _ in val_items}]
        if not prompts:
            return {"win_rate": None}
        session.gpt.eval()
        result = win_rate(session.gpt, reference, judge_model.to(session.device), prompts, session.template,
                          session.config.dpo.max_new_tokens, session.device)
        return {"win_rate": result["win_rate"], "win_rate_prompts": result["prompts"],
                "policy_reward": result["policy_reward"], "reference_reward": result["reference_reward"],
                "reward_model": str(judge)}


def load_judge(path: Path, tokenizer):
    """The reward model at `path`, refused when its tokenizer is not the policy's."""
    judge, judge_tokenizer = load_reward(path)
    if judge_tokenizer.get_vocab(with_added_tokens=True) != tokenizer.get_vocab(with_added_tokens=True):
        raise UserError(f"{path}: the reward model's tokenizer differs from the policy's")
    return judge
