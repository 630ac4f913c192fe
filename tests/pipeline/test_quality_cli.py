"""`tokenmill quality train` from a prepare output's decisions, logged to MLflow, then used by prepare."""

import json
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "dataprep"))
from quality_samples import boilerplate, prose  # noqa: E402

from dataprep.config import PrepareConfig  # noqa: E402
from dataprep.pipeline import run  # noqa: E402


def tokenmill(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def prepared_corpus(tmp_path: Path) -> Path:
    """Prose kept and boilerplate removed by the rules: the decisions to learn from."""
    rng = random.Random(3)
    records = [{"id": f"{lang}-{k}{i}", "text": (" ".join(prose(lang, rng) for _ in range(3)) if k == "p" else
                                               boilerplate(lang, rng)), "source_languages": [lang]}
               for lang in ("en", "fa", "pl") for k in "pn" for i in range(40)]
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    config = PrepareConfig()
    config.steps = ["normalize", "language", "quality", "exact_dedup"]
    run(tmp_path / "docs.jsonl", tmp_path / "corpus", config)
    return tmp_path / "corpus"


def test_train_from_a_prepare_outputs_decisions_per_language(tmp_path):
    prepared_corpus(tmp_path)
    proc = tokenmill("quality", "train", "--decisions", "corpus", "--out", "model", "--lang", "en,fa,pl",
                     "--set", "tracking.enabled=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "en_roc_auc=" in proc.stdout and "pl_precision=" in proc.stdout
    manifest = json.loads((tmp_path / "model" / "model.json").read_text())
    assert set(manifest["languages"]) == {"en", "fa", "pl"}
    bad = tokenmill("quality", "train", "--positive", "corpus", "--out", "model2", "--set", "tracking.enabled=false",
                    cwd=tmp_path)
    assert bad.returncode == 2 and "no negative examples" in bad.stderr and "Traceback" not in bad.stderr


def test_the_classifier_stage_learns_from_the_corpus_decisions_and_says_when_it_cannot(tmp_path, monkeypatch):
    from pipeline.params import load_params
    from pipeline.stages import stage

    corpus = prepared_corpus(tmp_path)
    monkeypatch.chdir(tmp_path)
    params = load_params(None, ["tracking.enabled=false"])
    result = stage("classifier").run(params, corpus=corpus, out=tmp_path / "model")
    assert result["all_roc_auc"] > 0.5 and (tmp_path / "model" / "model.json").is_file()

    kept_only = tmp_path / "kept-only"
    run(tmp_path / "docs.jsonl", kept_only, PrepareConfig(steps=["normalize"]))  # nothing removed
    result = stage("classifier").run(params, corpus=kept_only, out=tmp_path / "none")
    assert result["trained"] is False
    assert json.loads((tmp_path / "none" / "stats.json").read_text())["reason"].endswith("no rule-removed (negative) documents")
