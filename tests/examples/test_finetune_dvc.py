"""examples/finetune/dvc.yaml in a real git + DVC repo on tiny params: after the pipeline, `make finetune`'s
`dvc repro` in examples/finetune (a DVC project of its own) rebuilds the example data and the SFT, reward,
DPO, PPO and GRPO models on the arithmetic task into the root's cache, and finds them up to date the second
time; the root's plain `dvc status` never names them."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from pipeline_fixture import ROOT, init_repo, make_project, run

pytestmark = pytest.mark.slow

TINY_FINETUNE = {"max_steps": 2, "batch_size": 4, "warmup_steps": 1, "eval_every": 2, "device": "cpu",
                 "dpo": {"max_new_tokens": 4}, "task": {"max_new_tokens": 2},
                 "rl": {"steps": 2, "max_new_tokens": 2}, "ppo": {"prompts_per_step": 4},
                 "grpo": {"prompts_per_step": 2, "group_size": 2}}


def test_dvc_repro_rebuilds_the_fine_tuning_outputs_after_the_pipeline(tmp_path: Path):
    project = make_project(tmp_path / "project")
    shutil.copytree(ROOT / "examples" / "finetune", project / "examples" / "finetune",
                    ignore=shutil.ignore_patterns("__pycache__", "dvc.lock", "tmp", "models"))
    params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
    for key, value in TINY_FINETUNE.items():
        params["finetune"][key] = {**params["finetune"][key], **value} if isinstance(value, dict) else value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    init_repo(project, tmp_path / "remote")
    dvc = [sys.executable, "-m", "dvc"]
    run(dvc + ["repro", "-q"], project)  # the pipeline: models/gpt
    assert (project / "models" / "gpt").is_dir()
    assert run(dvc + ["status"], project).strip() == "Data and pipelines are up to date."

    example = project / "examples" / "finetune"
    models = example / "models"
    run(dvc + ["repro"], example)  # `make finetune`
    lock = yaml.safe_load((example / "dvc.lock").read_text())
    assert set(lock["stages"]) == {"finetune-data", "arith-data", "finetune-sft", "finetune-reward", "finetune-dpo",
                                   "finetune-ppo", "finetune-grpo"}
    assert lock["stages"]["finetune-sft"]["params"]["../../params.yaml"]["finetune"]["max_steps"] == 2
    dpo = json.loads((models / "dpo" / "stats.json").read_text())
    assert dpo["base"] == "examples/finetune/models/sft" and dpo["reward_model"] == "examples/finetune/models/reward"
    assert dpo["win_rate"] is not None
    for stage in ("sft", "reward", "dpo", "ppo", "grpo"):  # every stage measured on the task
        stats = json.loads((models / stage / "stats.json").read_text())
        assert 0 <= stats["held_out_accuracy"] <= 1, stage
    assert json.loads((models / "grpo" / "stats.json").read_text())["reward"] == "examples.finetune.arith:check"
    base = json.loads((models / "sft" / "finetune.json").read_text())["base"]
    assert base["path"] == "models/gpt"
    # the models went to the root's cache (one cache for both projects), not one of the example's own
    assert not (example / ".dvc" / "cache").exists()
    sft_hash = lock["stages"]["finetune-sft"]["outs"][0]["md5"]
    assert (project / ".dvc" / "cache" / "files" / "md5" / sft_hash[:2] / sft_hash[2:]).is_file()
    # the example data rebuilt byte for byte: git sees no change
    assert run(["git", "status", "--porcelain", "examples/finetune/sft.jsonl",
                "examples/finetune/preferences.jsonl", "examples/finetune/arith"], project) == ""

    again = run(dvc + ["repro"], example)
    assert "didn't change, skipping" in again and "Running stage" not in again
    assert run(dvc + ["status"], example).strip() == "Data and pipelines are up to date."
    assert run(dvc + ["status"], project).strip() == "Data and pipelines are up to date."
