import pytest

from dataprep.config import DEFAULT_STEPS, PrepareConfig
from tokenmill.config import build, to_dict
from tokenmill.errors import ConfigError


def test_defaults_round_trip_through_yaml_data():
    config = build(PrepareConfig, to_dict(PrepareConfig()), "params.yaml: prepare")
    assert config == PrepareConfig()
    assert config.steps == DEFAULT_STEPS
    assert config.language.allowed == ["en", "fa", "pl"]
    assert config.near_dedup.num_perm == 96
    assert config.pii.ip_placeholder == "<IP_ADDRESS>"


def test_nested_values_are_typed():
    config = build(PrepareConfig, {"quality": {"min_words": 20}, "near_dedup": {"bands": 8, "rows": 4}}, "p")
    assert config.quality.min_words == 20 and config.near_dedup.num_perm == 32


@pytest.mark.parametrize(
    "data, message",
    [
        ({"steps": ["normalize", "spellcheck"]}, r"prepare: steps: unknown step 'spellcheck'"),
        ({"quality": {"min_wordz": 3}}, r"prepare\.quality: unknown key 'min_wordz'"),
        ({"language": {"min_score": 2}}, r"prepare\.language: language\.min_score must be within"),
        ({"repetition": {"max_top_ngram_char_frac": [0.2]}}, r"needs 3 values"),
        ({"normalize": {"form": "NFD"}}, r"prepare\.normalize\.form: expected one of"),
        ({"shard_size": 0}, r"shard_size must be positive"),
    ],
)
def test_bad_values_are_config_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        build(PrepareConfig, data, "params.yaml: prepare")
