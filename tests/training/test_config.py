import pytest

from tokenmill.config import build
from tokenmill.errors import ConfigError
from training.config import MODEL_PRESETS, ModelConfig, TrainConfig


def test_model_preset_fills_fields_and_overrides_win():
    config = build(ModelConfig, {"preset": "nano", "n_layer": 3}, "params.yaml: model")
    assert (config.n_layer, config.n_head, config.n_embd) == (3, MODEL_PRESETS["nano"]["n_head"],
                                                              MODEL_PRESETS["nano"]["n_embd"])


def test_model_without_preset_needs_every_shape_field():
    with pytest.raises(ConfigError, match="params.yaml: model: n_head is required"):
        build(ModelConfig, {"preset": None, "n_layer": 2}, "params.yaml: model")


def test_unknown_preset_and_bad_head_count_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model preset 'gpt5'"):
        build(ModelConfig, {"preset": "gpt5"}, "params.yaml: model")
    with pytest.raises(ConfigError, match="divisible"):
        build(ModelConfig, {"preset": "nano", "n_head": 3}, "params.yaml: model")


def test_train_config_from_yaml_values():
    config = build(TrainConfig, {"betas": [0.9, 0.99], "lr": "3e-4", "min_lr": 1e-5, "devices": 2,
                                 "precision": "bf16-mixed"}, "params.yaml: train")
    assert config.betas == (0.9, 0.99) and config.lr == 3e-4 and config.devices == 2
    with pytest.raises(ConfigError, match="precision"):
        build(TrainConfig, {"precision": "fp8"}, "params.yaml: train")


def test_presets_have_their_published_sizes_and_every_dimension_overrides():
    import torch

    from training.measure import memory_estimate, parameter_breakdown
    from training.model import GPT

    def size(preset: str, **overrides) -> dict:
        with torch.device("meta"):  # shapes only: no memory, no init time
            return parameter_breakdown(GPT(ModelConfig(preset=preset, **overrides), 50257))

    small = size("gpt2-small", bias=True)
    assert small["total"] == 124_439_808  # GPT-2 124M exactly (tied embeddings, biases)
    assert small["embeddings"] == 50257 * 768 + 1024 * 768 and small["norms"] == (2 * 12 + 1) * 2 * 768
    assert small["attention"] == 12 * (768 * 3 * 768 + 3 * 768 + 768 * 768 + 768)
    assert 350e6 < size("gpt2-medium", bias=True)["total"] < 360e6
    assert 1.1e9 < size("1b")["total"] < 1.3e9
    assert size("tiny", n_embd=64, n_head=4)["total"] > size("tiny")["total"]
    assert ModelConfig(preset="gpt2-small", block_size=256, n_layer=2).block_size == 256
    estimate = memory_estimate(1_000_000_000)
    assert estimate["32-true"]["bytes_per_parameter"] == 16 and estimate["bf16-true"]["bytes_per_parameter"] == 8
    assert abs(estimate["32-true"]["total"] - 16e9 / 2**30) < 1e-9


def test_flops_per_token_formula():
    from training.measure import flops_per_token

    # 6N + 12·L·H·Q·T with N = 124,439,808 - 786,432 position embeddings (nanoGPT's GPT-2 figure)
    assert flops_per_token(124_439_808, 1024 * 768, 12, 12, 768, 1024) == 6 * 123_653_376 + 12 * 12 * 12 * 64 * 1024


def test_precision_auto_is_32_bit_on_cpu_and_strategies_are_checked():
    from training.strategies import resolve_precision

    assert resolve_precision(TrainConfig(accelerator="cpu")) == "32-true"
    assert resolve_precision(TrainConfig(precision="bf16-mixed")) == "bf16-mixed"
    with pytest.raises(ConfigError, match="strategy must be one of"):
        build(TrainConfig, {"strategy": "deepspeed"}, "params.yaml: train")
    with pytest.raises(ConfigError, match="mixture.web: weight must be positive"):
        build(TrainConfig, {"mixture": {"web": 0}}, "params.yaml: train")
