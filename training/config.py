"""Configs of the training stages: params.yaml sections tokenize, model, train, evaluate, tracking.

Built with `tokenmill.config.build(Cls, params["train"], "params.yaml: train")`. The defaults suit the
offline demo (about 3 MB of English/Persian/Polish text, 2 CPU cores, about 6 minutes of training).
"""

from __future__ import annotations

from dataclasses import dataclass, field
# litgpt-style named model shapes; a ModelConfig field left at None takes the preset's value.
MODEL_PRESETS: dict[str, dict[str, int]] = {
    "nano": dict(n_layer=2, n_head=2, n_embd=32, block_size=32),  # tests: a few steps in seconds
    "demo": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),  # make demo on 2 CPU cores
    "shakespeare-cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64),  # data README CPU variant
    "gpt2-small": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),  # GPT-2 124M shape
}

PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true", "transformer-engine")


@dataclass
class TokenizeConfig:
    vocab_size: int = 8192  # BPE vocabulary size including the 256 byte tokens and the special token
    min_frequency: int = 2  # a pair must occur this often to be merged
    val_fraction: float = 0.05  # share of documents (by hash of their id) held out for validation
    seed: int = 1337  # salts the document-id hash that decides the split
    eot_token: str = "<|endoftext|>"  # special token written after every document
    encode_batch: int = 256  # documents encoded per encode_batch call

    def __post_init__(self) -> None:
        if not 257 <= self.vocab_size <= 2**32:
            raise ValueError(f"vocab_size must be at least 257 (256 bytes + end-of-text), got {self.vocab_size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.min_frequency < 1 or self.encode_batch < 1:
            raise ValueError("min_frequency and encode_batch must be at least 1")
        if not self.eot_token:
            raise ValueError("eot_token must not be empty")


@dataclass
class ModelConfig:
    preset: str | None = "demo"  # one of MODEL_PRESETS, or null to give every shape field below
    n_layer: int | None = None  # transformer blocks (None: from the preset)
    n_head: int | None = None  # attention heads; must divide n_embd
    n_embd: int | None = None  # width of the residual stream
    block_size: int | None = None  # context length in tokens
    dropout: float = 0.0  # dropout on attention and residual branches (0 for short runs)
    bias: bool = False  # biases in Linear layers and LayerNorms (GPT-2: true)

    def __post_init__(self) -> None:
        if self.preset is not None and self.preset not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset '{self.preset}' (known: {', '.join(MODEL_PRESETS)})")
        preset = MODEL_PRESETS.get(self.preset, {}) if self.preset else {}
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            if getattr(self, name) is None:
                if name not in preset:
                    raise ValueError(f"{name} is required when no preset is given")
                setattr(self, name, preset[name])
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class TrainConfig:
    batch_size: int = 16  # sequences per micro-batch per device
    accumulate_grad_batches: int = 1  # micro-batches per optimizer step
    max_steps: int = 1000  # optimizer steps (demo preset: about 3 steps/s, so about 6 minutes on 2 CPU cores)
    lr: float = 2e-3  # peak learning rate after warmup
    min_lr: float = 2e-4  # learning rate at the end of the cosine decay
    warmup_steps: int = 50  # linear warmup from 0 to lr
    weight_decay: float = 0.1  # AdamW decay on matrices only (not biases, norms, embeddings)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    grad_clip: float = 1.0  # clip gradient norm (0: no clipping)
    precision: str = "32-true"  # Lightning precision: "32-true", "bf16-mixed", "16-mixed", ...
    accelerator: str = "auto"  # "auto", "cpu", "gpu", ...
    devices: int | str = "auto"  # devices per node: a number or "auto"
    strategy: str = "auto"  # "auto", "ddp", "fsdp", ...
    num_nodes: int = 1  # machines taking part
    checkpoint_every: int = 200  # save a resumable checkpoint every this many steps
    val_every: int = 200  # validation loss every this many steps
    val_batches: int = 20  # validation micro-batches per check (fixed windows of val.bin)
    log_every: int = 10  # train loss, lr and tokens/s every this many steps
    seed: int = 1337  # model init and the sample stream
    compile: bool = False  # torch.compile the model
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)

    def __post_init__(self) -> None:
        for name in ("batch_size", "accumulate_grad_batches", "max_steps", "checkpoint_every", "val_every",
                     "val_batches", "log_every", "num_nodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.min_lr > self.lr or self.lr <= 0 or self.min_lr < 0:
            raise ValueError(f"need 0 <= min_lr <= lr and lr > 0, got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.grad_clip < 0 or self.weight_decay < 0 or self.num_workers < 0:
            raise ValueError("warmup_steps, grad_clip, weight_decay and num_workers must not be negative")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {list(self.betas)}")
        self.betas = tuple(self.betas)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if isinstance(self.devices, str) and self.devices != "auto" and not self.devices.lstrip("-").isdigit():
            raise ValueError(f"devices must be a number or 'auto', got {self.devices!r}")


@dataclass
class EvalConfig:
    max_tokens: int = 200_000  # evaluate on at most this many tokens of val.bin
    batch_size: int = 16  # windows per forward pass
    samples: int = 2  # samples generated per prompt
    prompts: list[str] = field(
        default_factory=lambda: [
            "The history of the city",
            "تاریخ این شهر",  # Persian: "the history of this city"
            "Historia miasta",  # Polish: "the history of the city"
        ]
    )
    max_new_tokens: int = 64  # tokens generated per sample
    temperature: float = 0.8  # sampling temperature (> 0)
    top_k: int | None = 50  # sample among the k most likely tokens (null: all)
    seed: int = 1337  # sampling seed

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.batch_size < 1 or self.samples < 0 or self.max_new_tokens < 0:
            raise ValueError("max_tokens and batch_size must be positive; samples and max_new_tokens >= 0")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 or null, got {self.top_k}")


@dataclass
class TrackingConfig:
    tracking_uri: str = "sqlite:///mlflow/mlflow.db"  # MLflow store (relative sqlite path: from the cwd)
    experiment: str = "tokenmill"  # MLflow experiment name
    artifact_location: str = "mlflow/artifacts"  # artifact root used when the experiment is created
    enabled: bool = True  # false: train and evaluate without MLflow (no run.json ids)

