"""GRPO (Shao et al., 2024): no value network. Each prompt is answered `group_size` times; a response's
advantage is its reward minus its group's mean, over the group's standard deviation, the same for all
its tokens. The reward is a verifiable one (a checker named as module:function, e.g.
examples.finetune.arith:check) or a reward model (a directory). The loss is PPO's clipped surrogate
plus kl_coef times the k3 estimate of KL(pi || ref) per token (Schulman's unbiased, positive
estimator), averaged over all response tokens of the batch (as Dr. GRPO, no per-sequence length
normalisation). A group whose responses all score the same teaches nothing and contributes zero.
"""

from __future__ import annotations

import copy

import torch

from training.finetune.lora import trainable
from training.finetune.registry import Session, register_stage
from training.finetune.rollout import (RlPrompt, RlStage, Rollout, clipped_policy_loss, entropy, evaluate, exact_kl,
                                       fit_rl, masked_mean, optimizer_step, response_logits, reward_function,
                                       rl_summary, sample, samples_of, subset, token_logps)


def group_advantages(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """(B,) advantages: each score against its group of `group_size` consecutive rows."""
    groups = scores.view(-1, group_size)
    mean, std = groups.mean(1, keepdim=True), groups.std(1, keepdim=True, unbiased=False)
    return ((groups - mean) / (std + 1e-4)).flatten()


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from sampled tokens: exp(ref - pi) - (ref - pi) - 1 >= 0."""
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


class Grpo:
    def __init__(self, session: Session):
        self.session, self.rl, self.grpo = session, session.config.rl, session.config.grpo
        self.policy = session.gpt
        self.reference = copy.deepcopy(session.gpt).eval().requires_grad_(False)
        self.reward = str(session.reward_model or self.grpo.reward)
        self.score = reward_function(self.reward, session, "finetune.grpo.reward")
        self.generator = torch.Generator().manual_seed(session.config.seed)

    def step(self, prompts: list[RlPrompt], optimizer) -> tuple[dict, list[dict]]:
        group = [p for p in prompts for _ in range(self.grpo.group_size)]
        rollout = sample(self.policy, group, self.session, self.generator)
        scores = self.score(rollout)
        advantages = group_advantages(scores, self.grpo.group_size).unsqueeze(1) * rollout.mask
        with torch.no_grad():
            logits = response_logits(self.policy, rollout)
            old, ref_logits = token_logps(logits, rollout.tokens), response_logits(self.reference, rollout)
            ref = token_logps(ref_logits, rollout.tokens)
            kl = float((exact_kl(logits, ref_logits) * rollout.mask).sum(1).mean())
        figures = self.update(rollout, old, ref, advantages, optimizer)
        signal = float((scores.view(-1, self.grpo.group_size).std(1) > 0).float().mean())
        return {**figures, "reward": float(scores.mean()), "kl": kl, "groups_with_signal": signal,
                "entropy": float(masked_mean(entropy(logits), rollout.mask)),
                "response_length": float(rollout.mask.sum(1).mean())}, samples_of(rollout, scores, self.session)

    def update(self, rollout: Rollout, old, ref, advantages, optimizer) -> dict:
        self.policy.eval()  # no dropout: the ratio must be 1 before the first update
        losses, clip_fractions = [], []
        for _ in range(self.rl.epochs):
            for index in torch.randperm(len(rollout.prompts), generator=self.generator).split(self.rl.minibatch_size):
                index = index.to(rollout.ids.device)
                part, mask = subset(rollout, index), rollout.mask[index]
                logps = token_logps(response_logits(self.policy, part), part.tokens)
                policy_loss, clipped = clipped_policy_loss(logps, old[index], advantages[index], mask, self.rl.clip)
                loss = policy_loss + self.rl.kl_coef * masked_mean(k3_kl(logps, ref[index]), mask)
                optimizer_step(loss, optimizer, self.session.config.grad_clip)
                losses.append(float(loss.detach()))
                clip_fractions.append(clipped)
        return {"loss": sum(losses) / len(losses), "clip_fraction": sum(clip_fractions) / len(clip_fractions)}


@register_stage
class GrpoStage(RlStage):
    """GRPO with a checker or a reward model; judged by the held-out mean reward, refused beyond rl.max_kl."""
    name, help = "grpo", "RL with group-relative advantages and a verifiable reward (finetune.grpo.reward)"

    def train(self, session: Session, train_items: list, val_items: list):
        grpo = Grpo(session)
        groups = trainable(grpo.policy, session.config, session.first_new)
        history = fit_rl(session, groups, train_items, session.config.grpo.prompts_per_step, grpo.step,
                         lambda: evaluate(grpo.policy, grpo.reference, val_items, session, grpo.score), "finetune grpo")
        return history, {**rl_summary(history, session.config.rl.steps), "reward": grpo.reward}, grpo.policy
