"""The `finetune` section of params.yaml, built with tokenmill.config.build(FinetuneConfig, ...)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

LORA_TARGETS = ("attn.qkv", "attn.proj", "mlp.fc", "mlp.proj")  # the Linear layers of training.model.Block


@dataclass
class LoraConfig:
    rank: int = 8  # rank r of the update B @ A; 0 means full fine-tuning (every weight trains)
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.05  # dropout on the adapter's input
    targets: list[str] = field(default_factory=lambda: list(LORA_TARGETS))  # Linear layers (name suffixes)
    train_new_tokens: bool = True  # also train the embedding rows of the tokens the chat template added

    def __post_init__(self) -> None:
        if self.rank < 0 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError("lora needs rank >= 0, alpha > 0 and dropout in [0, 1)")
        unknown = [t for t in self.targets if t not in LORA_TARGETS]
        if unknown or (self.rank and not self.targets):
            raise ValueError(f"lora.targets must be a non-empty subset of {', '.join(LORA_TARGETS)}, "
                             f"got {self.targets}")


@dataclass
class RewardConfig:
    likelihood: bool = False  # score also weighs the answer's mean log-likelihood under the trunk's LM head (weight from 0)
    sft_weight: float = 0.0  # with likelihood: + this weight x the chosen answers' mean NLL under that head (0: none)

    def __post_init__(self) -> None:
        if self.sft_weight < 0:
            raise ValueError("reward.sft_weight must not be negative")


@dataclass
class DpoConfig:
    beta: float = 0.1  # strength of the KL anchor to the reference: the implicit reward is beta * log-ratio
    reward_model: str | None = "models/finetune/reward"  # judge of the held-out win rate (null: no win rate)
    max_new_tokens: int = 48  # tokens generated per held-out prompt when judging the win rate
    sft_weight: float = 0.0  # weight of the chosen answers' per-token NLL added to the loss (RPO; 0: plain DPO)

    def __post_init__(self) -> None:
        if self.beta <= 0 or self.max_new_tokens < 1 or self.sft_weight < 0:
            raise ValueError("dpo.beta must be positive, dpo.max_new_tokens at least 1, dpo.sft_weight not negative")


@dataclass
class TaskConfig:
    held_out: str | None = "examples/finetune/arith/held_out.jsonl"  # {"prompt", "answer"} lines (null: none)
    checker: str = "examples.finetune.arith:check"  # module:function(response, answer) -> bool
    max_new_tokens: int = 16  # greedy tokens per held-out answer (arith's longest answer takes 15 with <|end|>)


@dataclass
class RlConfig:
    """Shared by ppo and grpo: rollouts, the clipped update, the KL anchor to the frozen base."""
    prompts: str = "examples/finetune/arith/prompts.jsonl"  # --prompts: {"prompt"[, "answer"]} lines
    steps: int = 40  # rollout batches (one optimizer step per minibatch and epoch on each)
    lr: float = 3e-4  # constant after a linear warmup of finetune.warmup_steps
    max_new_tokens: int = 12  # sampled tokens per response
    temperature: float = 1.0  # sampling temperature of the rollouts
    epochs: int = 2  # optimisation passes over each rollout batch
    minibatch_size: int = 32  # responses per optimizer step
    clip: float = 0.2  # PPO ratio clip
    kl_coef: float = 0.05  # KL penalty coefficient (ppo: its start when kl_target is set)
    kl_target: float | None = None  # ppo: adapt kl_coef towards this KL per response (null: fixed)
    kl_horizon: int = 1000  # ppo: responses over which the adaptive coefficient moves by up to 20%
    max_kl: float = 2.0  # gate: mean KL (nats per held-out greedy response) to the base must stay within
    sample_every: int = 10  # write rollout samples to samples.jsonl every this many steps

    def __post_init__(self) -> None:
        if min(self.steps, self.epochs, self.minibatch_size, self.max_new_tokens, self.sample_every) < 1:
            raise ValueError("rl.steps, epochs, minibatch_size, max_new_tokens and sample_every must be at least 1")
        if self.lr <= 0 or self.temperature <= 0 or self.clip <= 0 or self.kl_coef < 0 or self.max_kl <= 0:
            raise ValueError("rl needs lr, temperature, clip and max_kl > 0 and kl_coef >= 0")


@dataclass
class PpoConfig:
    reward_model: str = "models/finetune/reward"  # --reward-model: scores each response
    prompts_per_step: int = 32  # rollouts per step (one response each)
    vf_coef: float = 0.5  # weight of the value loss
    value_lr: float = 1e-3  # the value head's learning rate: it starts from scratch, so faster than rl.lr
    value_clip: float = 0.2  # clip of the value prediction's move from the rollout's
    gamma: float = 1.0  # discount
    lam: float = 0.95  # GAE lambda


@dataclass
class GrpoConfig:
    reward: str = "examples.finetune.arith:check"  # module:function(response, answer), or a reward model dir
    prompts_per_step: int = 8  # prompts per step
    group_size: int = 8  # responses sampled per prompt; advantages are relative within the group


@dataclass
class RegistryConfig:
    sft: str = "tokenmill-sft"  # registered model names, one per stage
    reward: str = "tokenmill-reward"
    dpo: str = "tokenmill-dpo"
    ppo: str = "tokenmill-ppo"
    grpo: str = "tokenmill-grpo"
    alias: str = "champion"  # moves to a new version only when its held-out metric is better
    enabled: bool = True  # false: no registered versions (the run is still tracked)


@dataclass
class FinetuneConfig:
    base: str = "models/gpt"  # --base for sft and reward: a model directory, an MLflow run id or "champion"
    sft_model: str = "models/finetune/sft"  # --base for reward, dpo, ppo, grpo (dpo/ppo/grpo: the frozen reference)
    sft_data: str = "examples/finetune/sft.jsonl"  # --data for sft
    preference_data: str = "examples/finetune/preferences.jsonl"  # --data for reward and dpo
    out: str = "models/finetune"  # --out is <out>/<stage> unless given
    system_prompt: str | None = None  # a system turn put before every prompt (null: none)
    val_fraction: float = 0.2  # share of examples (by hash of their content) held out for evaluation
    max_steps: int = 200  # optimizer steps
    batch_size: int = 8  # examples (or pairs) per step
    lr: float = 1e-3  # peak learning rate (LoRA takes a larger one than full fine-tuning)
    min_lr: float = 1e-4  # end of the cosine decay
    warmup_steps: int = 10  # linear warmup
    weight_decay: float = 0.0  # AdamW decay on trained matrices
    grad_clip: float = 1.0  # clip the gradient norm (0: no clipping)
    eval_every: int = 50  # held-out evaluation every this many steps (and at the end)
    seed: int = 1337  # batch order, LoRA init, dropout
    device: str = "auto"  # "auto" (cuda when present), "cpu", "cuda", "cuda:1", ...
    precision: str = "32-true"  # "32-true" or "bf16-mixed" (autocast on CUDA)
    merge: bool = False  # write LoRA merged into a plain model (the --merge flag sets it)
    stage_steps: dict[str, float] = field(default_factory=dict)  # a stage's share of max_steps where it differs
    stage_lr: dict[str, float] = field(default_factory=dict)  # peak lr of a stage where it differs (min_lr scales along)
    lora: LoraConfig = field(default_factory=LoraConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    dpo: DpoConfig = field(default_factory=DpoConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    rl: RlConfig = field(default_factory=RlConfig)
    ppo: PpoConfig = field(default_factory=PpoConfig)
    grpo: GrpoConfig = field(default_factory=GrpoConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)

    def __post_init__(self) -> None:
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        for name in ("max_steps", "batch_size", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0 or not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise ValueError("warmup_steps, weight_decay and grad_clip must not be negative")
        if any(v <= 0 for v in [*self.stage_steps.values(), *self.stage_lr.values()]):
            raise ValueError("stage_steps and stage_lr must be positive")
        if self.precision not in ("32-true", "bf16-mixed"):
            raise ValueError(f"precision must be 32-true or bf16-mixed, got {self.precision!r}")


def for_stage(config: FinetuneConfig, stage: str) -> FinetuneConfig:
    """`config` with the stage's own max_steps (its stage_steps share of max_steps, at least 1) and lr
    (stage_lr) where it has them. A share, not a count: a run that shrinks max_steps shrinks them all."""
    lr = config.stage_lr.get(stage, config.lr)
    steps = max(1, round(config.max_steps * config.stage_steps.get(stage, 1.0)))
    return replace(config, max_steps=steps, lr=lr, min_lr=config.min_lr * lr / config.lr)
