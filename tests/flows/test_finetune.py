"""Fine-tuning on a new pre-training champion (flows/finetune.py): the flow run through Prefect, and the
served `finetune` deployment triggered by tokenmill.champion.updated on a real local server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from pipeline_fixture import tiny_params

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "training" / "finetune"))

from finetune_samples import make_base, toy_preferences, toy_sft, write_jsonl  # noqa: E402

TINY_FINETUNE = {"max_steps": 4, "batch_size": 4, "warmup_steps": 1, "eval_every": 2, "val_fraction": 0.25,
                 "device": "cpu", "lora": {"rank": 4, "dropout": 0.0}, "dpo": {"max_new_tokens": 4}}


def make_project(root: Path) -> Path:
    """params.yaml with tiny fine-tuning, toy data and an MLflow store of its own."""
    root.mkdir(parents=True)
    params = tiny_params()
    params["tracking"].update(tracking_uri=f"sqlite:///{root}/mlflow/mlflow.db",
                              artifact_location=str(root / "mlflow" / "artifacts"))
    finetune = params["finetune"]
    for key, value in TINY_FINETUNE.items():
        finetune[key] = {**finetune[key], **value} if isinstance(value, dict) else value
    finetune.update(sft_data=str(write_jsonl(root / "sft.jsonl", toy_sft(12))),
                    preference_data=str(write_jsonl(root / "prefs.jsonl", toy_preferences(16))))
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return root


def crown(root: Path, base: Path, bits_per_byte: float) -> str:
    """Register `base` as a pre-trained model version (the champion when it beats the holder); its version."""
    from mlflow import MlflowClient
    from mlflow.entities import RunStatus

    from pipeline.params import load_params
    from training import registry
    from training import tracking as mlf

    tracking = load_params(root / "params.yaml").tracking
    client = MlflowClient(tracking.tracking_uri)
    run_id = client.create_run(mlf.ensure_experiment(tracking)).info.run_id
    client.set_terminated(run_id, RunStatus.to_string(RunStatus.FINISHED))
    return str(registry.register(tracking, run_id, base, {"bits_per_byte": bits_per_byte}, "causal", "set")["version"])


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    return make_base(tmp_path_factory.mktemp("base") / "gpt")


@pytest.fixture(scope="module")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def test_the_flow_fine_tunes_the_champion_sft_reward_then_dpo(harness, base, tmp_path, monkeypatch):
    from flows.champion import announce_champion, champion_number
    from flows.finetune import finetune_champion
    from pipeline.params import load_params

    project = make_project(tmp_path / "project")
    monkeypatch.chdir(project)
    params = load_params("params.yaml")
    with pytest.raises(Exception, match="has no champion"):
        finetune_champion(params_path="params.yaml")

    @__import__("prefect").flow
    def crowning(bits_per_byte: float):  # as evaluate_task does: compare the alias before and after
        before = champion_number(params)
        crown(project, base, bits_per_byte)
        return announce_champion(params, before)

    assert crowning(2.0)["version"] == "1"
    assert crowning(3.0) is None  # not better: the alias stays on v1, no event
    assert champion_number(params) == "1"

    assert finetune_champion(version="7", params_path="params.yaml")["skipped"]  # superseded: nothing to do
    result = finetune_champion(model="tokenmill", version="1", params_path="params.yaml")
    assert not result["skipped"] and result["version"] == "1"
    sft, reward, dpo = (json.loads((project / "models" / "finetune" / s / "finetune.json").read_text())
                        for s in ("sft", "reward", "dpo"))
    assert sft["base"]["registered"] == "tokenmill" and str(sft["base"]["version"]) == "1"
    assert reward["base"]["path"] == dpo["base"]["path"] == "models/finetune/sft"
    assert result["dpo"]["reward_model"] == "models/finetune/reward"
    assert result["dpo"]["win_rate"] is not None
    assert all(result[s]["run_id"] for s in ("sft", "reward", "dpo"))


@pytest.mark.slow
def test_the_served_deployment_runs_when_the_champion_event_arrives(base, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.champion import CHAMPION_RESOURCE, CHAMPION_UPDATED
    from pipeline_fixture import served_deployments

    project = make_project(tmp_path / "project")
    (project / "sources").mkdir()  # flows.serve reads each crawl source's YAML
    (project / "sources" / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny", "start_urls": ["http://127.0.0.1:9/"], "max_pages": 1, "max_depth": 0,
        "allowed_domains": ["127.0.0.1"], "allow_private": True}))  # never crawled: the test ends first
    version = crown(project, base, 2.0)
    with served_deployments(project, tmp_path) as (api_url, env, served, serve_log):
        with temporary_settings(updates={PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
            runs = lambda: client.read_flow_runs(  # noqa: E731
                flow_filter=FlowFilter(name=FlowFilterName(any_=["finetune-champion"])))
            deadline = time.monotonic() + 120
            # Serving creates the deployment first and its trigger's automation after; the server's trigger
            # service learns of a new automation from an event of its own. An event sent before both is
            # (rightly) lost, so wait for the automation, and send again only while no run was created.
            while not client.read_automations_by_name("finetune__automation_1"):
                assert time.monotonic() < deadline and served.poll() is None, serve_log.read_text()[-4000:]
                time.sleep(1)
            for attempt in range(6):
                # From another process, as a user would (this one's event worker may still hold another
                # test's server)
                subprocess.run(["prefect", "event", "emit", CHAMPION_UPDATED, "--resource-id", CHAMPION_RESOURCE,
                                "--payload", json.dumps({"model": "tokenmill", "version": version})],
                               env=env, check=True, capture_output=True, timeout=60)
                created = time.monotonic() + 20
                while not runs() and time.monotonic() < created:
                    time.sleep(1)
                if runs():
                    break
            assert runs(), "no flow run after six champion events\n" + serve_log.read_text()[-4000:]
            deadline = time.monotonic() + 900  # SFT, reward model and DPO on a slow CI machine
            while not [r for r in runs() if r.state and r.state.is_final()]:
                assert time.monotonic() < deadline, serve_log.read_text()[-4000:]
                time.sleep(1)
            assert len(runs()) == 1
            run = runs()[0]
            assert run.state.is_completed(), (run.state.message, serve_log.read_text()[-4000:])
            assert run.parameters["version"] == version
    assert (project / "models" / "finetune" / "dpo" / "stats.json").is_file()
