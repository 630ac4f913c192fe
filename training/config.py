"""Configs of the training stages: params.yaml sections evalset, tokenize, model, train, evaluate, tracking.

Built with `tokenmill.config.build(Cls, params["train"], "params.yaml: train")`. The defaults suit the
offline demo (about 3 MB of English/Persian/Polish text, 2 CPU cores, about 3 minutes of training:
bench/README.md has the measured figures).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# litgpt-style named model shapes; a ModelConfig field left at None takes the preset's value.
# Parameter counts are for a 50,257-token vocabulary (GPT-2's) with tied embeddings.
MODEL_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, block_size=32),  # tests: a few steps in seconds
    "demo": dict(n_layer=4, n_head=4, n_embd=128, block_size=128),  # make demo on 2 CPU cores
    "shakespeare-cpu": dict(n_layer=4, n_head=4, n_embd=128, block_size=64),  # data README CPU variant
    "gpt2-small": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),  # GPT-2 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024, block_size=1024),  # GPT-2 350M
    "1b": dict(n_layer=22, n_head=16, n_embd=2048, block_size=2048),  # 1.2B (1.1B without embeddings)
}
MODEL_PRESETS["nano"] = MODEL_PRESETS["tiny"]  # the name earlier params files used

# "auto": bf16-mixed on a GPU that supports bf16, 16-mixed on an older GPU, 32-true on CPU (resolved at train time).
PRECISIONS = ("auto", "32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true",
              "transformer-engine")
STRATEGIES = ("auto", "ddp", "fsdp", "fsdp2")  # fsdp: Lightning FSDPStrategy; fsdp2: ModelParallelStrategy + fully_shard


TOKENIZER_KINDS = ("bpe", "char")


@dataclass
class TokenizeConfig:
    kind: str = "bpe"  # "bpe": byte-level BPE; "char": one token per character, unseen ones as UTF-8 bytes
    vocab_size: int = 8192  # vocabulary size including the 256 byte tokens and the 4 special tokens (char: at most)
    min_frequency: int = 2  # BPE: a pair must occur this often to be merged; char: a character this often
    val_fraction: float = 0.05  # without an evaluation set: share of documents (by hash of their id) held out
    seed: int = 1337  # salts the document-id hash that decides that split
    eot_token: str = "<|endoftext|>"  # end of a document (EOS), written after every document
    bos_token: str = "<|bos|>"  # start of a document, written before every document
    pad_token: str = "<|pad|>"  # fills batches of unequal length (never in the token files)
    mask_token: str = "<|mask|>"  # replaces masked positions of the masked-LM objective
    encode_batch: int = 256  # documents encoded per encode_batch call
    train_sample_bytes: int = 1_000_000_000  # the tokenizer trains on at most about this much text (a share by id hash)
    workers: int = 1  # processes encoding in parallel (--workers N); the token files are the same for any number

    def special_tokens(self) -> list[str]:
        """The special tokens in id order: they take ids 0..3 of every vocabulary."""
        return [self.eot_token, self.bos_token, self.pad_token, self.mask_token]

    def __post_init__(self) -> None:
        if self.train_sample_bytes < 1 or self.workers < 1:
            raise ValueError("train_sample_bytes and workers must be at least 1")
        if self.kind not in TOKENIZER_KINDS:
            raise ValueError(f"kind must be one of {', '.join(TOKENIZER_KINDS)}, got {self.kind!r}")
        specials = self.special_tokens()
        if not 256 + len(specials) < self.vocab_size <= 2**32:
            raise ValueError(f"vocab_size must be more than {256 + len(specials)} (256 bytes + special tokens), "
                             f"got {self.vocab_size}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.min_frequency < 1 or self.encode_batch < 1:
            raise ValueError("min_frequency and encode_batch must be at least 1")
        # '<|name|>': letters inside punctuation, so BPE (which never merges across a letter/punctuation
        # boundary) cannot make the special token out of text, and the token files cannot contain it by accident.
        for token in specials:
            if not re.fullmatch(r"<\|[a-z_]+\|>", token or ""):
                raise ValueError(f"special tokens look like '<|name|>' (lower-case letters), got {token!r}")
        if len(set(specials)) != len(specials):
            raise ValueError(f"special tokens must differ, got {specials}")


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
    max_steps: int = 1000  # optimizer steps (demo preset: about 5 steps/s, so about 3 minutes on 2 CPU cores)
    lr: float = 2e-3  # peak learning rate after warmup
    min_lr: float = 2e-4  # learning rate at the end of the cosine decay
    warmup_steps: int = 50  # linear warmup from 0 to lr
    weight_decay: float = 0.1  # AdamW decay on matrices only (not biases, norms, embeddings)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW betas
    grad_clip: float = 1.0  # clip gradient norm (0: no clipping)
    precision: str = "auto"  # "auto" (bf16-mixed on GPUs that support it, else 32-true) or a Lightning precision
    accelerator: str = "auto"  # "auto", "cpu", "gpu", ...
    devices: int | str = "auto"  # devices per node: a number or "auto"
    strategy: str = "auto"  # "auto", "ddp", "fsdp" (Lightning FSDP, full-state checkpoints) or "fsdp2"
    num_nodes: int = 1  # machines taking part
    checkpoint_every: int = 200  # save a resumable checkpoint every this many steps (and at the end, and on SIGTERM)
    keep_checkpoints: int = 2  # newest step checkpoints kept (>= 2: a torn newest one falls back to the one before)
    val_every: int = 200  # validation loss every this many steps
    val_batches: int = 20  # validation micro-batches per check (fixed windows of val.bin)
    log_every: int = 10  # train loss, lr and tokens/s every this many steps
    seed: int = 1337  # model init and the sample stream
    compile: bool = False  # torch.compile the model
    num_workers: int = 0  # DataLoader worker processes (0: load in the training process)
    mixture: dict[str, float] = field(default_factory=dict)  # {source: weight}: sample sources in these proportions
    rehydrate: bool = False  # draw documents by their duplicate-cluster size (near_dedup's cluster_size) ...
    rehydration: list[list[int]] = field(default_factory=lambda: [[1, 1], [2, 2], [3, 3], [4, 3], [5, 5], [100, 8], [1000, 1]])
    # ... with these [min cluster size, weight] rows: FineWeb-2's (training/data.py FINEWEB2_REHYDRATION)
    progress_every_s: float = 30.0  # when stderr is not a terminal: one plain progress line this often
    objective: str = "causal"  # "causal" (next token) or "masked" (masked LM, bidirectional attention)
    mask_rate: float = 0.15  # masked objective: share of positions selected (80 % MASK, 10 % random, 10 % kept)

    def __post_init__(self) -> None:
        for name in ("batch_size", "accumulate_grad_batches", "max_steps", "checkpoint_every", "val_every",
                     "val_batches", "log_every", "num_nodes", "keep_checkpoints"):
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
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        bad = [name for name, weight in self.mixture.items() if not weight > 0]
        if bad:
            raise ValueError(f"mixture.{bad[0]}: weight must be positive, got {self.mixture[bad[0]]}")
        sizes = [row[0] for row in self.rehydration] if all(len(r) == 2 for r in self.rehydration) else []
        if not sizes or sizes[0] != 1 or sizes != sorted(set(sizes)) or any(r[1] < 1 for r in self.rehydration):
            raise ValueError("rehydration: [min cluster size, weight] rows, sizes rising from 1, weights at least 1")
        if self.progress_every_s <= 0:
            raise ValueError(f"progress_every_s must be positive, got {self.progress_every_s}")
        if self.objective not in ("causal", "masked"):
            raise ValueError(f"objective must be causal or masked, got {self.objective!r}")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must be between 0 and 1, got {self.mask_rate}")


EVAL_DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass
class TasksConfig:
    """The pipeline's lm-evaluation-harness run (the `tasks` stage; `tokenmill evaluate --tasks` runs any)."""

    names: list[str] = field(default_factory=lambda: ["tokenmill"])  # harness tasks; "tokenmill": every
    #                               local task built from the evaluation set (training/local_tasks.py), offline
    limit: float | None = 50  # at most this many examples per task (a fraction if below 1; null: all)

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("names must name at least one task")
        if self.limit is not None and self.limit <= 0:
            raise ValueError(f"limit must be positive or null, got {self.limit}")


@dataclass
class EvalConfig:
    max_tokens: int = 200_000  # evaluate whole validation documents, drawn in a fixed order, up to this many tokens
    batch_size: int = 16  # windows per forward pass
    stride: int | None = None  # causal: windows of block_size tokens every `stride` tokens, each scoring only the
    #                            targets no earlier window scored (null: block_size // 2; block_size: no overlap)
    mask_rate: float = 0.15  # masked-LM models: share of positions masked for evaluation (as train.mask_rate)
    device: str = "auto"  # "auto": cuda if available, else mps, else cpu
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
    top_p: float | None = 0.95  # then among the most likely tokens holding this much probability (null: all)
    seed: int = 1337  # sampling and evaluation-mask seed

    def __post_init__(self) -> None:
        if self.max_tokens < 1 or self.batch_size < 1 or self.samples < 0 or self.max_new_tokens < 0:
            raise ValueError("max_tokens and batch_size must be positive; samples and max_new_tokens >= 0")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1 or null, got {self.top_k}")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1] or null, got {self.top_p}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"stride must be at least 1 or null, got {self.stride}")
        if not 0.0 < self.mask_rate < 1.0:
            raise ValueError(f"mask_rate must be between 0 and 1, got {self.mask_rate}")
        if self.device not in EVAL_DEVICES:
            raise ValueError(f"device must be one of {', '.join(EVAL_DEVICES)}, got {self.device!r}")


@dataclass
class TrackingConfig:
    tracking_uri: str = "sqlite:///mlflow/mlflow.db"  # MLflow store (relative sqlite path: from the cwd)
    experiment: str = "tokenmill"  # MLflow experiment name
    artifact_location: str = "mlflow/artifacts"  # artifact root used when the experiment is created
    enabled: bool = True  # false: train and evaluate without MLflow (no run.json ids)
    registered_model: str = "tokenmill"  # MLflow registered model of the pre-trained GPT (finetune.registry.base reads it)
    register: bool = True  # evaluate registers the pipeline's model and moves alias `champion` if it is better
    # what the champion gate compares: "bits_per_byte" (lower wins), or a harness task figure
    # "task/<task>/<metric>" as metrics.json names it (e.g. task/tokenmill_next_sentence_en/acc_norm; accuracy-like
    # figures: higher wins, perplexity: lower), measured on the same task for the candidate and the champion
    gate: str = "bits_per_byte"

    def __post_init__(self) -> None:
        if self.gate != "bits_per_byte" and not (self.gate.startswith("task/") and len(self.gate.split("/")) == 3):
            raise ValueError(f"gate must be bits_per_byte or task/<task>/<metric>, got {self.gate!r}")



@dataclass
class EvalSetConfig:
    """How the evaluation set (training/evalset.py) is made. It takes effect only when the set is made: the
    first time, after `tokenmill evalset --refresh`, or once its directory is deleted; never on a new corpus."""

    fraction: float = 0.05  # share of the corpus's documents (by a hash of their id) frozen as the set
    seed: int = 1337  # salts that hash (with tokenize.seed's value, the first set is the old id-hash split)
    max_documents: int = 2000  # at most this many: the lowest hashes
    source: str = ""  # documents (a .jsonl/.parquet file or a directory of shards) to use instead ("": the corpus)

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction must be between 0 and 1, got {self.fraction}")
        if self.max_documents < 1:
            raise ValueError(f"max_documents must be at least 1, got {self.max_documents}")
