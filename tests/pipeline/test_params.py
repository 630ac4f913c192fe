"""params.yaml as one typed object, overrides, and where an ad-hoc run writes."""

from pathlib import Path

import pytest

from pipeline.params import apply_override, load_params, run_name
from tokenmill.errors import ConfigError

PROJECT_PARAMS = Path(__file__).parents[2] / "params.yaml"


def test_params_overrides_and_project_file():
    params = load_params(Path(__file__).parents[2] / "params.yaml", ["train.max_steps=7", "crawl.sources=[a, b]"])
    assert params.train.max_steps == 7
    assert params.crawl.sources == ["a", "b"]
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_override({}, "train.max_steps")


def test_params_unknown_section(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("trian:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'trian'"):
        load_params(path)


@pytest.mark.parametrize("overrides, message", [
    (["train.lr=fast"], "--set train.lr=fast: expected float, got str 'fast'"),
    (["train.max_steps=7", "train.lr=fast"], "--set train.lr=fast: expected float, got str 'fast'"),
    (["train.lrr=0.1"], "--set train.lrr=0.1: train: unknown key 'lrr' (known: "),
    (["trian.max_steps=3"], "--set trian.max_steps=3: unknown key 'trian' (known: "),
    (["prepare.quality.min_words=many"], "--set prepare.quality.min_words=many: expected int, got str 'many'"),
])
def test_a_bad_override_is_named_not_the_params_file(overrides, message):
    with pytest.raises(ConfigError) as caught:
        load_params(PROJECT_PARAMS, overrides)
    assert str(caught.value).startswith(message), str(caught.value)
    assert "params.yaml" not in str(caught.value)


def test_a_bad_value_in_the_params_file_still_names_the_file(tmp_path: Path):
    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: fast\n")
    with pytest.raises(ConfigError, match=r"params.yaml: train.lr: expected float"):
        load_params(path, ["train.max_steps=3"])


def test_a_bad_override_on_the_command_line_is_one_line_and_exit_2(tmp_path: Path, capsys):
    from pipeline.cli import main

    (tmp_path / "params.yaml").write_text(PROJECT_PARAMS.read_text(encoding="utf-8"))
    assert main(["summary", "--params", str(tmp_path / "params.yaml"), "--set", "train.lr=fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tokenmill summary: error: --set train.lr=fast: expected float, got str 'fast'"


def test_without_overrides_outputs_are_the_versioned_paths():
    params = load_params(PROJECT_PARAMS)
    assert params.run is None
    assert (params.paths.model, params.paths.metrics) == ("models/gpt", "metrics.json")


def test_an_ad_hoc_training_writes_its_model_and_metrics_under_runs():
    params = load_params(PROJECT_PARAMS, ["train.max_steps=30"])
    assert params.run == "train.max_steps=30"
    # upstream of train: the versioned inputs are read, and kept
    assert (params.paths.crawl, params.paths.corpus, params.paths.tokens) == ("data/crawl", "data/corpus",
                                                                             "data/tokens")
    assert params.paths.model == "runs/train.max_steps=30/models/gpt"
    assert params.paths.checkpoints == "runs/train.max_steps=30/models/checkpoints"
    assert params.paths.metrics == "runs/train.max_steps=30/metrics.json"


def test_an_earlier_stage_override_moves_everything_downstream():
    params = load_params(PROJECT_PARAMS, ["tokenize.vocab_size=512", "train.lr=0.001"])
    assert params.paths.corpus == "data/corpus"
    assert params.paths.tokens.startswith(f"runs/{params.run}/")
    assert params.paths.model.startswith(f"runs/{params.run}/")


def test_paths_and_tracking_overrides_keep_the_chosen_paths():
    params = load_params(PROJECT_PARAMS, ["paths.model=elsewhere", "tracking.enabled=false"])
    assert params.run is None and params.paths.model == "elsewhere" and params.paths.metrics == "metrics.json"


def test_run_names_are_safe_directory_names():
    assert run_name(["train.max_steps=30"]) == "train.max_steps=30"
    odd = run_name(["evaluate.prompts=[a b, ../../etc]"])
    assert "/" not in odd and " " not in odd and not odd.startswith(".")
    assert run_name(["x.y=" + "z" * 200]) != run_name(["x.y=" + "z" * 201])


def test_every_path_dvc_yaml_reads_is_in_params_yaml():
    """dvc.yaml's ${paths.*} come from params.yaml itself (DVC does not know the dataclass defaults)."""
    import re

    import yaml

    root = Path(__file__).parents[2]
    used = set(re.findall(r"\$\{paths\.(\w+)\}", (root / "dvc.yaml").read_text()))
    declared = set(yaml.safe_load(PROJECT_PARAMS.read_text())["paths"])
    assert used and used <= declared, f"missing from params.yaml paths: {sorted(used - declared)}"
