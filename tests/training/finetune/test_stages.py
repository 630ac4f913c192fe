"""Each stage through finetune() on tiny data: SFT lowers the held-out response loss, the reward
model separates a separable toy set, DPO raises the chosen-over-rejected margin."""

import json

import pytest
from finetune_samples import tiny_finetune, toy_preferences, toy_sft, write_jsonl

from tokenmill.errors import UserError
from training.finetune.config import DpoConfig
from training.finetune.run import finetune
from training.train import load_model


@pytest.fixture(scope="module")
def sft_dir(base_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sft")
    data = write_jsonl(tmp / "sft.jsonl", toy_sft())
    finetune("sft", data, str(base_dir), tmp / "sft", tiny_finetune(max_steps=30, lora={"rank": 0}, lr=1e-2, min_lr=1e-3))
    return tmp / "sft"


@pytest.fixture(scope="module")
def preferences(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("prefs") / "prefs.jsonl", toy_preferences())


def test_full_sft_learns_the_responses(sft_dir):
    stats = json.loads((sft_dir / "stats.json").read_text())
    assert stats["lora_rank"] == 0 and stats["merged"] and stats["held_out_examples"] >= 1
    assert stats["val_loss"] < 0.5 * stats["val_loss_before"]  # one fixed answer: easy to learn
    assert sorted(p.name for p in sft_dir.iterdir()) == ["finetune.json", "history", "model.pt", "plots",
                                                         "stats.json", "tokenizer.json"]
    meta = json.loads((sft_dir / "finetune.json").read_text())
    assert meta["added_tokens"] == ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    assert load_model(sft_dir).vocab_size == 324
    val = (sft_dir / "history" / "val.csv").read_text().splitlines()
    assert val[0].startswith("step,loss") and [r.split(",")[0] for r in val[1:]] == ["0", "10", "20", "30"]


def test_reward_model_ranks_a_separable_toy_set(sft_dir, preferences, tmp_path):
    stats = finetune("reward", preferences, str(sft_dir), tmp_path / "reward",
                     tiny_finetune(max_steps=40, lora={"rank": 0}))
    assert stats["held_out_pairs"] >= 5
    assert stats["val_accuracy"] >= 0.8 and stats["val_margin"] > 0  # chance is 0.5
    assert (tmp_path / "reward" / "reward.pt").is_file()


def test_dpo_raises_the_chosen_over_rejected_margin(sft_dir, preferences, tmp_path):
    stats = finetune("dpo", preferences, str(sft_dir), tmp_path / "dpo", tiny_finetune(max_steps=15),
                     reward_model=None)
    assert stats["val_margin_before"] == 0.0  # the policy starts as its reference
    assert stats["val_margin"] > 0.05 and stats["val_accuracy"] > 0.5
    history = [json.loads(json.dumps(r)) for r in
               (tmp_path / "dpo" / "history" / "val.csv").read_text().splitlines()[1:]]
    margins = [float(r.split(",")[2]) for r in history]
    assert margins == sorted(margins)  # held-out margin grows at every evaluation
    assert (tmp_path / "dpo" / "adapter.pt").is_file()  # LoRA, not merged


def test_dpo_win_rate_judged_by_the_reward_model(sft_dir, preferences, tmp_path):
    finetune("reward", preferences, str(sft_dir), tmp_path / "reward", tiny_finetune(max_steps=5, lora={"rank": 0}))
    stats = finetune("dpo", preferences, str(sft_dir), tmp_path / "dpo",
                     tiny_finetune(max_steps=3, dpo=DpoConfig(max_new_tokens=8)), reward_model=str(tmp_path / "reward"))
    assert 0.0 <= stats["win_rate"] <= 1.0 and stats["win_rate_prompts"] == stats["held_out_pairs"]


def test_stage_errors_are_one_line(base_dir, tmp_path):
    with pytest.raises(UserError, match=r"unknown fine-tuning stage 'rlhf' \(known: sft, reward, dpo, ppo, grpo\)"):
        finetune("rlhf", tmp_path / "x.jsonl", str(base_dir), tmp_path / "o")
    with pytest.raises(UserError, match="x.jsonl: data file not found"):
        finetune("sft", tmp_path / "x.jsonl", str(base_dir), tmp_path / "o", tiny_finetune())
    good = write_jsonl(tmp_path / "good.jsonl", toy_sft(4))
    with pytest.raises(UserError, match="--base nowhere: no such model directory"):
        finetune("sft", good, "nowhere", tmp_path / "o", tiny_finetune())
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "Q", "response": "A"}, {"prompt": "Q", "response": ""}])
    with pytest.raises(UserError, match=f"^{bad}:2: field 'response' is empty$"):
        finetune("sft", bad, str(base_dir), tmp_path / "o", tiny_finetune())
    assert not (tmp_path / "o").exists()


def test_dpo_sft_weight_adds_the_chosen_answers_nll(sft_dir, preferences):
    """RPO: dpo.sft_weight adds that weight times the chosen answers' per-token NLL to the DPO loss."""
    import torch

    from training.finetune import dpo
    from training.finetune.data import encode_pairs, load_preferences
    from training.finetune.model_dir import load_policy
    from training.finetune.template import ChatTemplate, add_chat_tokens

    gpt, tokenizer, _ = load_policy(sft_dir)
    template = ChatTemplate(add_chat_tokens(tokenizer)[0])
    pairs = encode_pairs(load_preferences(preferences)[:4], template, gpt.config.block_size)
    cpu, pad = torch.device("cpu"), template.end_id
    plain, figures = dpo.batch_loss(gpt, gpt, pairs, pad, 0.1, cpu)
    weighted, _ = dpo.batch_loss(gpt, gpt, pairs, pad, 0.1, cpu, sft_weight=0.5)
    assert figures["chosen_nll"] > 0 and torch.isclose(weighted - plain, torch.tensor(0.5 * figures["chosen_nll"]))
    with pytest.raises(ValueError, match="sft_weight"):
        DpoConfig(sft_weight=-1.0)


def test_reward_model_with_the_likelihood_term(sft_dir, preferences, tmp_path):
    """finetune.reward.likelihood: the score adds a learnt weight (from 0) times the answer's mean
    log-likelihood under the trunk's LM head; it starts as the plain head, learns the weight, and is
    written and read back with it (also scoring rollout rows, whose mask marks the answer)."""
    import torch

    from training.finetune.config import RewardConfig
    from training.finetune.data import Encoded
    from training.finetune.model_dir import load_reward

    stats = finetune("reward", preferences, str(sft_dir), tmp_path / "reward",
                     tiny_finetune(max_steps=40, lora={"rank": 0}, reward=RewardConfig(likelihood=True)))
    assert stats["val_accuracy"] >= 0.8
    model, _ = load_reward(tmp_path / "reward")
    assert model.likelihood and float(model.likelihood_weight.detach()) != 0.0
    rows = [Encoded([5, 6, 7, 8], [0, 0, 1, 1], "a"), Encoded([5, 6, 9], [0, 0, 1], "b")]
    with torch.no_grad():
        scores = model.score(rows, 0, torch.device("cpu"))
        plain = model.score([Encoded(r.ids, [0] * len(r.ids), r.where) for r in rows], 0, torch.device("cpu"))
    assert scores.shape == (2,) and not torch.allclose(scores, plain)  # the mask selects the likelihood's tokens


def test_reward_sft_weight_adds_the_chosen_answers_nll(sft_dir, preferences):
    """finetune.reward.sft_weight: with the likelihood score, the Bradley–Terry loss adds that weight
    times the chosen answers' mean NLL under the trunk's LM head (nothing without the likelihood score)."""
    import torch

    from training.finetune import reward
    from training.finetune.config import RewardConfig
    from training.finetune.data import encode_pairs, load_preferences
    from training.finetune.model_dir import load_policy
    from training.finetune.template import ChatTemplate, add_chat_tokens

    gpt, tokenizer, _ = load_policy(sft_dir)
    template = ChatTemplate(add_chat_tokens(tokenizer)[0])
    pairs = encode_pairs(load_preferences(preferences)[:4], template, gpt.config.block_size)
    cpu, pad = torch.device("cpu"), template.end_id
    model = reward.RewardModel(gpt, likelihood=True)
    with torch.no_grad():
        plain, _ = reward.batch_loss(model, pairs, pad, cpu)
        weighted, figures = reward.batch_loss(model, pairs, pad, cpu, sft_weight=0.5)
    assert figures["chosen_nll"] > 0 and torch.isclose(weighted - plain, torch.tensor(0.5 * figures["chosen_nll"]))
    head_only = reward.RewardModel(load_policy(sft_dir)[0], likelihood=False)
    with torch.no_grad():
        assert "chosen_nll" not in reward.batch_loss(head_only, pairs, pad, cpu, sft_weight=0.5)[1]
    with pytest.raises(ValueError, match="sft_weight"):
        RewardConfig(sft_weight=-1.0)
