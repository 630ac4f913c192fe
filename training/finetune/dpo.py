"""Direct preference optimisation (Rafailov et al., 2023) against a frozen reference model.

The implicit reward of an answer y to prompt x is beta * (log pi(y|x) - log ref(y|x)), summed over
the answer's tokens; the loss is -log sigmoid(reward(chosen) - reward(rejected)). The reported
margin is that reward difference, the accuracy the share of pairs where it is positive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from training.finetune.data import IGNORE, Encoded, lm_batch
from training.finetune.template import ChatTemplate


def sequence_logps(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of each row's target tokens (those not IGNORE): shape (B,)."""
    logits, _ = model(x)
    mask = y != IGNORE
    logps = torch.gather(F.log_softmax(logits.float(), dim=-1), 2, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (logps * mask).sum(dim=-1)


def pair_logps(model, pairs: list[tuple[Encoded, Encoded]], pad_id: int, device: torch.device):
    """(chosen, rejected) summed log-probabilities, from one forward pass over both sides."""
    x, y = (t.to(device) for t in lm_batch([c for c, _ in pairs] + [r for _, r in pairs], pad_id))
    return sequence_logps(model, x, y).chunk(2)


def dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: float):
    """(loss, margins): margins are beta * ((pi_c - ref_c) - (pi_r - ref_r)) per pair."""
    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    return -F.logsigmoid(margins).mean(), margins


def batch_loss(policy, reference, pairs, pad_id: int, beta: float, device: torch.device):
    with torch.no_grad():
        ref_c, ref_r = pair_logps(reference, pairs, pad_id, device)
    pol_c, pol_r = pair_logps(policy, pairs, pad_id, device)
    loss, margins = dpo_loss(pol_c, pol_r, ref_c, ref_r, beta)
    margins = margins.detach()
    return loss, {"margin": float(margins.mean()), "accuracy": float((margins > 0).float().mean())}


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
