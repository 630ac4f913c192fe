"""`tokenmill ablate` on tiny presets: two variants decided through select, one parent run, two children;
then `tokenmill quality train` on a variant's decisions, logged to the same MLflow store (the one slow test
that pays for MLflow's start-up)."""

import json
import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "dataprep"))
from quality_samples import boilerplate, prose  # noqa: E402

from pipeline.ablate import split_values, variants  # noqa: E402
from pipeline.cli import main  # noqa: E402
from tokenmill.errors import UserError  # noqa: E402


def test_the_grid_is_every_combination_and_lists_keep_their_commas():
    assert split_values("[a,b],[a,b,c]") == ["[a,b]", "[a,b,c]"]
    grid = variants(["prepare.quality.min_words=20,60", "train.lr=0.001"])
    assert grid == [{"prepare.quality.min_words": "20", "train.lr": "0.001"},
                    {"prepare.quality.min_words": "60", "train.lr": "0.001"}]
    with pytest.raises(UserError, match="KEY=V1,V2"):
        variants(["prepare.quality.min_words"])


@pytest.mark.slow
def test_a_two_variant_ablation_on_tiny_presets(tmp_path, monkeypatch):
    rng = random.Random(11)
    docs = [{"id": f"{lang}-{i}", "text": " ".join(prose(lang, rng) for _ in range(rng.randint(1, 5)))
             + ("\n" + boilerplate(lang, rng) if i % 4 == 0 else "")} for lang in ("en", "fa", "pl") for i in range(16)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    monkeypatch.chdir(tmp_path)
    sets = ["prepare.steps=[normalize,language,quality]", "model.preset=tiny", "train.max_steps=2", "train.batch_size=2",
            "train.warmup_steps=1", "train.val_every=2", "train.val_batches=1", "train.checkpoint_every=2",
            "tokenize.vocab_size=300", "evalset.fraction=0.2", "train.precision=32-true", "train.devices=1",
            "evaluate.samples=0", "evaluate.max_tokens=3000"]
    argv = ["ablate", "words", "prepare.quality.min_words=20,200", "--in", "docs.jsonl"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0

    results = json.loads((tmp_path / "runs" / "ablate-words" / "ablation.json").read_text())
    print((tmp_path / "runs" / "ablate-words" / "comparison.csv").read_text())
    assert [r["selected"] for r in results] == [True, True]
    assert results[0]["documents"] > results[1]["documents"]  # the stricter variant keeps fewer
    assert all(r["metrics"]["bits_per_byte"] > 0 and "bits_per_byte/lang=fa" in r["metrics"] for r in results)
    tokenizers = {(tmp_path / "runs" / "ablate-words" / r["name"] / "tokens" / "tokenizer.json").read_bytes() for r in results}
    assert len(tokenizers) == 1

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tokenmill").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.run_name == "ablate words" and len(children) == 2
    assert {c.data.params["prepare.quality.min_words"] for c in children} == {"20", "200"}
    assert {"comparison.csv", "comparison.md", "comparison.png"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    corpus = tmp_path / "runs" / "ablate-words" / results[1]["name"] / "corpus"
    assert main(["quality", "train", "--decisions", str(corpus), "--out", "quality-model"]) == 0
    (found,) = client.search_runs([client.get_experiment_by_name("tokenmill").experiment_id],
                                  "attributes.run_name = 'quality-classifier'")
    assert 0 <= found.data.metrics["all_roc_auc"] <= 1 and "all_precision" in found.data.metrics  # tiny: not a quality bar
    assert {"score_histogram.png", "stats.json", "model"} <= {a.path for a in client.list_artifacts(found.info.run_id)}
