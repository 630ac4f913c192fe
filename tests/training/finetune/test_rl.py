"""PPO and GRPO through finetune() on the tiny base: they run, move the reward, keep the KL to the base
bounded, write a policy with its rollout samples; the KL bound refuses a promotion in the registry."""

import csv
import json

import pytest
from finetune_samples import tiny_finetune, tiny_rl, toy_preferences, toy_prompts, write_jsonl

from tokenmill.errors import UserError
from training.finetune.run import finetune
from training.train import load_model


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("prompts") / "prompts.jsonl", toy_prompts())


def train_rows(out):
    with open(out / "history" / "train.csv", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def test_grpo_with_a_checker_raises_the_held_out_reward(base_dir, prompts, tmp_path):
    stats = finetune("grpo", prompts, str(base_dir), tmp_path / "grpo", tiny_rl())
    assert stats["reward"] == "finetune_samples:brevity" and stats["steps"] == 12
    assert stats["val_reward"] > stats["val_reward_before"] + 0.1  # shorter answers: the checker's reward
    rows = train_rows(tmp_path / "grpo")
    assert [r["step"] for r in rows] == list(range(1, 13))
    assert all(0 <= r["kl"] <= 10 and 0 <= r["clip_fraction"] <= 1 for r in rows)
    samples = [json.loads(line) for line in (tmp_path / "grpo" / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [1, 1, 5, 5, 10, 10] and {"prompt", "response", "reward"} <= set(samples[0])
    assert load_model(tmp_path / "grpo").vocab_size == 324  # a plain policy, as SFT writes


def test_ppo_follows_the_reward_model_and_the_kl_penalty_bounds_it(base_dir, prompts, tmp_path):
    finetune("reward", write_jsonl(tmp_path / "prefs.jsonl", toy_preferences()), str(base_dir), tmp_path / "reward",
             tiny_finetune(max_steps=30, lora={"rank": 0}))
    # 48 steps and a value head as fast as the policy: on 12 the reward's move was within the noise of the
    # thread count (it rose on one thread and fell on two)
    free = finetune("ppo", prompts, str(base_dir), tmp_path / "free",
                    tiny_rl(rl={"kl_coef": 0.0, "steps": 48}, ppo={"value_lr": 1e-2}), reward_model=str(tmp_path / "reward"))
    rows = train_rows(tmp_path / "free")
    assert {"reward", "kl", "entropy", "clip_fraction", "value_loss", "response_length"} <= set(rows[0])
    assert free["val_reward"] > free["val_reward_before"] + 0.05, (free["val_reward"], free["val_reward_before"])
    # adaptive coefficient: the KL is above its target, so the coefficient grows from its start
    anchored = finetune("ppo", prompts, str(base_dir), tmp_path / "anchored", tiny_rl(rl={
        "kl_coef": 0.5, "kl_target": 0.01, "kl_horizon": 64}), reward_model=str(tmp_path / "reward"))
    assert anchored["kl_coef"] > 0.5 and anchored["val_kl"] < free["val_kl"]
    assert max(r["kl"] for r in train_rows(tmp_path / "anchored")) < max(r["kl"] for r in rows)


def test_rl_errors_are_one_line(base_dir, tmp_path):
    no_answer = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Q?"}, {"prompt": "R?"}, {"prompt": "S?"}])
    with pytest.raises(UserError, match=r"p.jsonl:\d: field 'answer' is missing \(the checker"):
        finetune("grpo", no_answer, str(base_dir), tmp_path / "o", tiny_rl())
    with pytest.raises(UserError, match="finetune.grpo.reward: no module 'nowhere'"):
        finetune("grpo", no_answer, str(base_dir), tmp_path / "o", tiny_rl(grpo={"reward": "nowhere:check"}))
    with pytest.raises(UserError, match="reward.pt: not found"):
        finetune("ppo", no_answer, str(base_dir), tmp_path / "o", tiny_rl(), reward_model=str(tmp_path))
    assert not (tmp_path / "o").exists()


def test_rl_gate_promotes_a_better_reward_only_within_the_kl_bound(tracking):
    from mlflow import MlflowClient

    from training import tracking as mlf
    from training.finetune import track
    from training.finetune.config import RegistryConfig
    from training.finetune.registry import get_stage

    config, stage = tiny_rl(registry=RegistryConfig(grpo=f"grpo-{tracking.experiment}")), get_stage("grpo")
    client = MlflowClient(tracking.tracking_uri)

    def register(reward: float, kl: float) -> dict:
        run_id = client.create_run(mlf.ensure_experiment(tracking)).info.run_id
        return track.register(tracking, config, "grpo", run_id, reward, "data", "held-out", stage.gate,
                              stage.refusal({"val_reward": reward, "val_kl": kl}, config))

    assert stage.gate == ("val_reward", True) and register(0.5, 1.0)["promoted"]
    drifted = register(0.9, 2 * config.rl.max_kl)
    assert not drifted["promoted"] and drifted["reason"] == f"kept: val_kl 4 exceeds finetune.rl.max_kl {config.rl.max_kl:g}"
    assert not register(0.4, 0.1)["promoted"]
    assert register(0.7, 0.1)["promoted"]
    assert str(client.get_model_version_by_alias(config.registry.grpo, "champion").version) == "4"


def test_value_head_is_clipped_apart_and_has_its_own_learning_rate():
    """optimizer_step clips a "clip_apart" group (PPO's value head) on its own: a huge value gradient
    leaves the policy's step as it would be alone; PPO's value head gets ppo.value_lr."""
    import torch

    from training.finetune.config import PpoConfig, RlConfig
    from training.finetune.rollout import optimizer_step

    policy, head = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.SGD([{"params": [policy]}, {"params": [head], "clip_apart": True}], lr=1.0)
    optimizer_step((policy * torch.tensor([0.3, 0.4, 0.0])).sum() + (head * 1e6).sum(), optimizer, grad_clip=1.0)
    assert torch.allclose(policy, -torch.tensor([0.3, 0.4, 0.0]))  # norm 0.5 < 1: not scaled by the head's
    assert torch.allclose(head.norm(), torch.tensor(1.0))
    assert PpoConfig().value_lr > RlConfig().lr
