"""RLHF with PPO (Ouyang et al., 2022; Ziegler et al., 2019): the policy answers prompts, the reward
model scores each answer, and the policy is optimised against that score under a per-token KL
penalty to the frozen SFT model.

Per step: sample one response per prompt (KV-cache generate, rollout.temperature); per-token reward
-kl_coef * (log pi - log ref) on every response token plus the reward model's score on the last;
advantages by GAE (gamma, lam) from a value head; then `rl.epochs` passes of minibatches with the
clipped policy loss and the clipped value loss. The value head is a small MLP on the policy's final
hidden states, detached: the value loss trains the head only and cannot pull the policy's weights.
With rl.kl_target set the coefficient adapts (Ziegler et al.'s proportional controller); else fixed.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn as nn

from training.finetune.lora import trainable
from training.finetune.registry import Session, register_stage
from training.finetune.rollout import (Rollout, RlStage, clipped_policy_loss, entropy, evaluate, exact_kl, fit_rl,
                                       masked_mean, model_scorer, optimizer_step, response_logits, rl_summary,
                                       sample, samples_of, subset, token_logps)


class ValueHead(nn.Module):
    def __init__(self, n_embd: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_embd, n_embd), nn.Tanh(), nn.Linear(n_embd, 1))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.net(hidden.detach()).squeeze(-1)


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """Generalised advantage estimates (B, L); rewards and values are 0 past each response's end, so
    the value after the last token is 0 and padding adds nothing."""
    advantages, running = torch.zeros_like(rewards), torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.size(1))):
        next_value = values[:, t + 1] if t + 1 < rewards.size(1) else torch.zeros_like(running)
        running = rewards[:, t] + gamma * next_value - values[:, t] + gamma * lam * running
        advantages[:, t] = running
    return advantages


def whiten(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mean = masked_mean(values, mask)
    std = masked_mean((values - mean) ** 2, mask).sqrt()
    return (values - mean) / (std + 1e-8) * mask


class Ppo:
    """One PPO run's state: policy, frozen reference, value head, reward model, KL coefficient."""

    def __init__(self, session: Session):
        self.session, self.rl, self.ppo = session, session.config.rl, session.config.ppo
        self.policy = session.gpt
        self.reference = copy.deepcopy(session.gpt).eval().requires_grad_(False)
        self.judge = str(session.reward_model or self.ppo.reward_model)
        self.score = model_scorer(Path(self.judge), session)
        self.head = ValueHead(session.gpt.config.n_embd).to(session.device)
        self.kl_coef = self.rl.kl_coef
        self.generator = torch.Generator().manual_seed(session.config.seed)

    def groups(self) -> list[dict]:
        return trainable(self.policy, self.session.config, self.session.first_new) + [
            {"params": list(self.head.parameters()), "weight_decay": 0.0, "peak_lr": self.ppo.value_lr,
             "clip_apart": True}]

    def forward(self, rollout: Rollout) -> tuple[torch.Tensor, torch.Tensor]:
        """(response logits, values) in one pass: the values read the policy's final hidden states."""
        captured = []
        handle = self.policy.ln_f.register_forward_hook(lambda module, args, output: captured.append(output))
        try:
            logits = response_logits(self.policy, rollout)
        finally:
            handle.remove()
        index = rollout.positions.unsqueeze(-1).expand(-1, -1, captured[0].size(-1))
        return logits, self.head(torch.gather(captured[0], 1, index)) * rollout.mask

    @torch.no_grad()
    def experience(self, rollout: Rollout) -> dict:
        """Old log-probabilities and values, rewards, advantages and returns of a rollout."""
        mask = rollout.mask
        logits, values = self.forward(rollout)
        old = token_logps(logits, rollout.tokens)
        ref_logits = response_logits(self.reference, rollout)
        scores = self.score(rollout)
        rewards = -self.kl_coef * (old - token_logps(ref_logits, rollout.tokens)) * mask
        rewards[torch.arange(mask.size(0)), mask.sum(1).long() - 1] += scores
        advantages = gae(rewards, values, self.ppo.gamma, self.ppo.lam) * mask
        return {"old": old, "values": values, "returns": advantages + values, "advantages": whiten(advantages, mask),
                "scores": scores, "kl": float(((exact_kl(logits, ref_logits)) * mask).sum(1).mean()),
                "entropy": float(masked_mean(entropy(logits), mask))}

    def update(self, rollout: Rollout, exp: dict, optimizer) -> dict:
        """rl.epochs passes of minibatches; mean policy loss, value loss and clip fraction."""
        self.policy.eval()  # no dropout: the ratio must be 1 before the first update
        figures = {"policy_loss": [], "value_loss": [], "clip_fraction": []}
        for _ in range(self.rl.epochs):
            for index in torch.randperm(len(rollout.prompts), generator=self.generator).split(self.rl.minibatch_size):
                index = index.to(rollout.ids.device)
                part, mask = subset(rollout, index), rollout.mask[index]
                logits, values = self.forward(part)
                policy_loss, clipped = clipped_policy_loss(token_logps(logits, part.tokens), exp["old"][index],
                                                           exp["advantages"][index], mask, self.rl.clip)
                old_values, returns = exp["values"][index], exp["returns"][index]
                values_clipped = old_values + (values - old_values).clamp(-self.ppo.value_clip, self.ppo.value_clip)
                value_loss = 0.5 * masked_mean(torch.max((values - returns) ** 2, (values_clipped - returns) ** 2), mask)
                optimizer_step(policy_loss + self.ppo.vf_coef * value_loss, optimizer, self.session.config.grad_clip)
                figures["policy_loss"].append(float(policy_loss.detach()))
                figures["value_loss"].append(float(value_loss.detach()))
                figures["clip_fraction"].append(clipped)
        return {k: sum(v) / len(v) for k, v in figures.items()}

    def step(self, prompts: list, optimizer) -> tuple[dict, list[dict]]:
        rollout = sample(self.policy, prompts, self.session, self.generator)
        exp = self.experience(rollout)
        figures = self.update(rollout, exp, optimizer)
        figures = {"loss": figures["policy_loss"] + self.ppo.vf_coef * figures["value_loss"], **figures,
                   "reward": float(exp["scores"].mean()), "kl": exp["kl"], "kl_coef": self.kl_coef,
                   "entropy": exp["entropy"], "response_length": float(rollout.mask.sum(1).mean())}
        if self.rl.kl_target:  # proportional controller: move towards the target KL, at most 20% per horizon
            error = max(-0.2, min(0.2, exp["kl"] / self.rl.kl_target - 1))
            self.kl_coef *= 1 + error * len(prompts) / self.rl.kl_horizon
        return figures, samples_of(rollout, exp["scores"], self.session)


@register_stage
class PpoStage(RlStage):
    """PPO against the reward model; judged by the held-out mean reward, refused beyond rl.max_kl."""
    name, help = "ppo", "RLHF: PPO against the reward model (--reward-model) on prompts (finetune.rl.prompts)"

    def train(self, session: Session, train_items: list, val_items: list):
        ppo = Ppo(session)
        history = fit_rl(session, ppo.groups(), train_items, session.config.ppo.prompts_per_step, ppo.step,
                         lambda: evaluate(ppo.policy, ppo.reference, val_items, session, ppo.score), "finetune ppo")
        return history, {**rl_summary(history, session.config.rl.steps), "reward_model": ppo.judge,
                         "kl_coef": ppo.kl_coef}, ppo.policy
