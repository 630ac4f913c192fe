"""lm-evaluation-harness through tokenmill's native adapter: local tasks built from the evaluation set, and
agreement with the harness's own `hf` model on the exported directory (offline: nothing is downloaded)."""

from __future__ import annotations

import json
import os

import pytest
import torch
import yaml

from tests.training.conftest import write_corpus
from tests.training.test_export import random_gpt
from tokenmill.config import to_dict
from training.config import EvalSetConfig, TokenizeConfig
from training.evalset import make_evalset
from training.local_tasks import build_tasks
from training.tokenizer import load_tokenizer, tokenize

os.environ["HF_DATASETS_OFFLINE"] = "1"  # the harness and datasets must read local files only
os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def evalset(tmp_path_factory):
    root = tmp_path_factory.mktemp("harness")
    corpus = write_corpus(root / "corpus", 90)
    make_evalset(corpus, root / "evalset", EvalSetConfig(fraction=0.4))
    return root / "evalset"


def test_local_tasks_are_built_deterministically_per_language(evalset, tmp_path):
    first, second = build_tasks(evalset, tmp_path / "a"), build_tasks(evalset, tmp_path / "b")
    names = sorted(first["tasks"])
    assert names == [f"tokenmill_{kind}_{lang}" for kind in ("last_word", "next_sentence") for lang in ("en", "fa", "pl")]
    assert first["eval_set"] == second["eval_set"] and first["tasks"] == second["tasks"]
    for name in names:
        assert (tmp_path / "a" / f"{name}.jsonl").read_bytes() == (tmp_path / "b" / f"{name}.jsonl").read_bytes()
        config = yaml.safe_load((tmp_path / "a" / f"{name}.yaml").read_text())
        assert config["task"] == name and config["metadata"]["eval_set"] == first["eval_set"]
        assert config["dataset_kwargs"]["data_files"]["test"] == str((tmp_path / "a" / f"{name}.jsonl").resolve())
    documents = {json.loads(line)["id"]: json.loads(line)["text"]
                 for line in (evalset / "documents.jsonl").read_text(encoding="utf-8").splitlines()}
    for line in (tmp_path / "a" / "tokenmill_next_sentence_fa.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        true = item["choices"][item["label"]]
        assert f"{item['context']} {true}" in documents[item["id"]]  # the true continuation of its own document
        assert len(set(item["choices"])) == 4
    for line in (tmp_path / "a" / "tokenmill_last_word_pl.jsonl").read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        assert item["target"].startswith(" ") and f"{item['context']}{item['target']}" in documents[item["id"]]
    # built once per evaluation set: asking again keeps the directory as it is
    stamp = (tmp_path / "a" / "tasks.json").stat().st_mtime_ns
    build_tasks(evalset, tmp_path / "a")
    assert (tmp_path / "a" / "tasks.json").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_native_adapter_agrees_with_the_harness_hf_model_on_the_export(evalset, tmp_path):
    """Same log-likelihoods (1e-4), same greedy generations and same task accuracies as the harness's `hf` model
    on the exported directory; `tokenmill evaluate --tasks` writes them to metrics.json and the model's run."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from pipeline.cli import main
    from training.export import export_hf
    from training.harness import TokenmillLM, run_harness, task_metrics

    tokens = tmp_path / "tokens"
    tokenize(evalset.parent / "corpus", tokens, TokenizeConfig(vocab_size=400, min_frequency=1), eval_set=evalset)
    tokenizer = load_tokenizer(tokens / "tokenizer.json")
    gpt = random_gpt(tokenizer.get_vocab_size())
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    torch.save({"state_dict": gpt.state_dict(), "model_config": to_dict(gpt.config), "vocab_size": gpt.vocab_size,
                "objective": "causal"}, model_dir / "model.pt")
    (model_dir / "tokenizer.json").write_bytes((tokens / "tokenizer.json").read_bytes())
    export_hf(model_dir, tmp_path / "hf")

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"paths": {"evalset": str(evalset)}, "tracking": {"enabled": False}}))
    assert main(["evaluate", "--params", str(params), "--model", str(model_dir), "--tasks", "tokenmill",
                 "--limit", "4", "--out", str(tmp_path / "metrics.json")]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    tasks = json.loads((evalset.parent / "evalset-tasks" / "tasks.json").read_text())
    names = sorted(tasks["tasks"])

    native = TokenmillLM(gpt, tokenizer, batch_size=8)
    hf = HFLM(pretrained=str(tmp_path / "hf"), batch_size=8, device="cpu")
    reference = task_metrics(run_harness(hf, names, [evalset.parent / "evalset-tasks"], limit=4))
    accuracies = {k: v for k, v in reference.items() if k.endswith(("/acc", "/acc_norm"))}
    assert len(accuracies) == 9 and accuracies == {k: metrics[k] for k in accuracies}

    pairs = []
    for name in names:
        for line in (evalset.parent / "evalset-tasks" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()[:3]:
            item = json.loads(line)
            pairs += [(item["context"], " " + c) for c in item["choices"]] if "choices" in item else \
                [(item["context"], item["target"])]
    requests = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    ours, theirs = native.loglikelihood(requests), hf.loglikelihood(requests)
    assert [g for _, g in ours] == [g for _, g in theirs]
    assert max(abs(a - b) for (a, _), (b, _) in zip(ours, theirs)) < 1e-4

    texts = [context for context, _ in pairs[:6]]
    rolling = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    hf_rolling = HFLM(pretrained=str(tmp_path / "hf"), batch_size=8, device="cpu", add_bos_token=False)
    assert max(abs(a - b) for a, b in zip(native.loglikelihood_rolling(rolling),
                                          hf_rolling.loglikelihood_rolling(rolling))) < 1e-4

    generate = [Instance("generate_until", {}, (t, {"until": ["."], "max_gen_toks": 10, "do_sample": False}), i)
                for i, t in enumerate(texts)]
    assert native.generate_until(generate) == hf.generate_until(generate)
