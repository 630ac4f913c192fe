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
