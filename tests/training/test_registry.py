"""The registry: a pyfunc that writes text, and the champion gate both ways, on a real MLflow store."""

import json
import os
import shutil
import subprocess
import sys

import mlflow.pyfunc
import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient

from pipeline.cli import main

from training import tracking as mlf
from training.config import EvalConfig, ModelConfig, TrackingConfig
from training.evaluate import evaluate
from training.model import GPT
from training.registry import CHAMPION, format_models, list_models


def model_dir(directory, tokens, tracking, steps):
    """A nano GPT trained `steps` plain-PyTorch steps on train.bin, saved as the train stage does, with a run."""
    torch.manual_seed(0)
    meta = json.loads((tokens / "meta.json").read_text())
    model = GPT(ModelConfig(preset="nano"), meta["vocab_size"])
    train = np.memmap(tokens / "train.bin", dtype=np.uint16, mode="r")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        starts = rng.integers(0, len(train) - 33, 16)
        window = torch.from_numpy(np.stack([train[s:s + 33] for s in starts]).astype(np.int64))
        _, loss = model(window[:, :-1], window[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    directory.mkdir(parents=True)
    torch.save({"state_dict": model.state_dict(), "model_config": {"preset": "nano"},
                "vocab_size": meta["vocab_size"], "eot_id": 0, "step": steps}, directory / "model.pt")
    shutil.copyfile(tokens / "tokenizer.json", directory / "tokenizer.json")
    run_id = mlf.start_run(tracking, f"nano {steps} steps")
    (directory / "run.json").write_text(json.dumps({"run_id": run_id}))
    return directory


@pytest.fixture
def registry_tracking(tracking) -> TrackingConfig:
    return TrackingConfig(**{**tracking.__dict__, "registered_model": f"gpt-{tracking.experiment}"})


@pytest.mark.slow
def test_champion_moves_only_to_a_better_model(tokens, registry_tracking, tmp_path, capsys):
    config = EvalConfig(max_tokens=2000, samples=0)
    weak = model_dir(tmp_path / "weak", tokens, registry_tracking, steps=0)
    strong = model_dir(tmp_path / "strong", tokens, registry_tracking, steps=40)
    first = evaluate(weak, tokens, tmp_path / "1" / "metrics.json", config, registry_tracking)
    assert first["registry"]["promoted"] and first["registry"]["version"] == 1
    second = evaluate(strong, tokens, tmp_path / "2" / "metrics.json", config, registry_tracking)
    assert second["bits_per_byte"] < first["bits_per_byte"]
    assert second["registry"]["promoted"] and second["registry"]["champion"] == pytest.approx(first["bits_per_byte"])
    third = evaluate(weak, tokens, tmp_path / "3" / "metrics.json", config, registry_tracking)  # worse: stays
    assert not third["registry"]["promoted"] and third["registry"]["champion_version"] == 2
    assert json.loads((tmp_path / "3" / "registry.json").read_text())["promoted"] is False

    client = MlflowClient(registry_tracking.tracking_uri)
    name = registry_tracking.registered_model
    assert int(client.get_model_version_by_alias(name, CHAMPION).version) == 2
    run = client.get_run(third["run_id"]).data  # the decision and both figures, on the candidate's run
    assert run.tags["registry.decision"].startswith("kept champion v2")
    assert run.metrics["registry/candidate_bits_per_byte"] == pytest.approx(third["bits_per_byte"])
    assert run.metrics["registry/champion_bits_per_byte"] == pytest.approx(second["bits_per_byte"])

    rows = list_models(registry_tracking)
    assert [(r["version"], r["champion"]) for r in rows] == [(3, False), (2, True), (1, False)]
    assert rows[1]["bits_per_byte"] == pytest.approx(second["bits_per_byte"])
    assert "<- champion" in format_models(name, rows).splitlines()[3]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tracking": registry_tracking.__dict__}))
    capsys.readouterr()
    assert main(["models", "--params", str(tmp_path / "params.yaml")]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == name and "<- champion" in listed[3] and listed[3].split()[0] == "2"

    # the champion is a pyfunc: prompt strings in, generated text out, the same for the same seed
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
    params = {"max_new_tokens": 12, "seed": 7}
    texts = pyfunc.predict(["The history of the city", "تاریخ این شهر"], params=params)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert pyfunc.predict(["The history of the city", "تاریخ این شهر"], params=params) == texts
    greedy = pyfunc.predict(["Historia miasta"], params={"temperature": 0.0, "max_new_tokens": 8})
    assert len(greedy) == 1
    # ... and it carries its own code and tokenizer: a fresh process without this checkout on its path
    script = (f"import mlflow, mlflow.pyfunc; mlflow.set_tracking_uri({registry_tracking.tracking_uri!r}); "
              f"m = mlflow.pyfunc.load_model('models:/{name}@{CHAMPION}'); "
              f"print(repr(m.predict(['The history of the city', 'تاریخ این شهر'], params={params!r})))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == repr(texts)


def test_a_champion_from_another_evaluation_set_is_not_compared(tokens, registry_tracking, tmp_path):
    strong = model_dir(tmp_path / "strong", tokens, registry_tracking, steps=0)
    first = evaluate(strong, tokens, tmp_path / "a.json", EvalConfig(max_tokens=2000, samples=0), registry_tracking)
    other = evaluate(strong, tokens, tmp_path / "b.json", EvalConfig(max_tokens=800, samples=0), registry_tracking)
    assert other["eval_set"] != first["eval_set"] and first["registry"]["promoted"]
    assert not other["registry"]["promoted"] and "not comparable" in other["registry"]["reason"]


def test_a_task_gate_promotes_the_higher_accuracy_on_the_same_task(tokens, registry_tracking, tmp_path):
    """tracking.gate: task/<task>/<metric>: an accuracy wins when higher, and only on the same task and set."""
    from dataclasses import replace

    from training.registry import register

    gated = replace(registry_tracking, gate="task/tokenmill_next_sentence_en/acc")
    model = model_dir(tmp_path / "m", tokens, gated, steps=0)
    run_id = json.loads((model / "run.json").read_text())["run_id"]

    def candidate(acc: float, task_set: str = "tokenmill_next_sentence_en@1.0:abc") -> dict:
        metrics = {"bits_per_byte": 5.0, "task/tokenmill_next_sentence_en/acc": acc}
        return register(gated, run_id, model, metrics, "causal", task_set)

    assert candidate(0.40)["promoted"]
    assert not candidate(0.30)["promoted"]
    better = candidate(0.55)
    assert better["promoted"] and better["champion"] == 0.40 and "beats" in better["reason"]
    assert not candidate(0.90, "tokenmill_next_sentence_en@1.0:other-set")["promoted"]
    with pytest.raises(ValueError, match="gate must be"):
        TrackingConfig(gate="accuracy")


def _generator(model_directory):
    from types import SimpleNamespace

    from training.registry import TextGenerator

    generator = TextGenerator()
    generator.load_context(SimpleNamespace(artifacts={"model": str(model_directory / "model.pt"),
                                                      "tokenizer": str(model_directory / "tokenizer.json")}))
    return generator


def test_a_prompts_continuation_does_not_depend_on_the_rest_of_the_batch(gpt_dir):
    """With a seed, the pyfunc writes the same text for a prompt alone, after other prompts, or first."""
    generator = _generator(gpt_dir)
    params = {"max_new_tokens": 12, "seed": 7, "temperature": 1.0}
    alone = generator.predict(None, ["The history of the city"], params=params)
    after = generator.predict(None, ["Biblioteka w Łodzi", "تاریخ این شهر", "The history of the city"], params=params)
    first = generator.predict(None, ["The history of the city", "Biblioteka w Łodzi"], params=params)
    assert alone[0] and after[2] == alone[0] and first[0] == alone[0]
    assert after[0] == generator.predict(None, ["Biblioteka w Łodzi"], params=params)[0]


def test_logging_the_pyfunc_prints_no_mlflow_advice(gpt_dir, tracking):
    """No "Add type hints" or "An input example was not provided" warnings (with raw ANSI colour codes)
    in a stage's log: the signature is explicit."""
    import warnings

    from training.registry import log_pyfunc

    run_id = mlf.start_run(tracking, "pyfunc warnings")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uri = log_pyfunc(tracking, run_id, gpt_dir)
    assert uri
    mlflow_warnings = [str(w.message)[:160] for w in caught if "mlflow" in w.filename]
    assert not [m for m in mlflow_warnings if "type hints" in m or "input example" in m or "\x1b[" in m], \
        mlflow_warnings
