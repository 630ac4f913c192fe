"""dvc.yaml is the stage table's (pipeline/stages.py), and each stage's code deps are the modules it runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from pipeline import codegraph, dvcfile
from pipeline.stages import STAGES, stage

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_dvc_yaml_is_the_one_the_stage_table_gives():
    assert (ROOT / "dvc.yaml").read_text(encoding="utf-8") == dvcfile.render(), \
        "dvc.yaml is stale: run `python -m pipeline.dvcfile` and commit it"


def test_every_stage_is_in_dvc_yaml_with_its_command_params_and_outputs():
    declared = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    assert list(declared) == [s.name for s in STAGES]
    assert declared["train"]["params"] == ["model", "train", "tracking"]
    assert declared["crawl"]["outs"] == [{"${paths.crawl}": {"push": False}}]


def test_code_deps_follow_imports_inside_functions_and_module_names_in_strings():
    crawl = dvcfile.code_deps(stage("crawl"))
    assert "crawler/middlewares.py" in crawl  # named only in Scrapy's settings, as a string
    assert "crawler/job.py" in crawl  # run as `python -m crawler.job`
    prepare = dvcfile.code_deps(stage("prepare"))
    assert "dataprep/steps/pii.py" in prepare  # discovered at run time: the package is an entry point
    assert not any(path.startswith(("training/", "crawler/")) for path in prepare)


def test_editing_fine_tuning_code_reruns_no_pre_training_stage():
    for name in ("tokenize", "train", "evaluate"):
        assert not any(path.startswith("training/finetune/") for path in dvcfile.code_deps(stage(name))), name
    assert "pipeline/summary.py" in dvcfile.code_deps(stage("report"))


def test_a_new_import_in_a_function_adds_the_module_to_the_stage(tmp_path: Path):
    for name in codegraph.PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    before = dvcfile.code_deps(stage("tokenize"), tmp_path)
    with open(tmp_path / "training" / "tokenizer.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef _later():\n    from training.finetune import lora\n\n    return lora\n")
    codegraph.imports.cache_clear()
    after = dvcfile.code_deps(stage("tokenize"), tmp_path)
    codegraph.imports.cache_clear()
    assert "training/finetune/lora.py" in set(after) - set(before)
