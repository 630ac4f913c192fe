"""prefect.yaml declares the deployments `make serve` serves (flows/serve.py), and their entrypoints load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict:
    from flows.serve import deployments

    monkeypatch.chdir(ROOT)
    return {d.name: d for d in deployments("params.yaml")}


def declared() -> dict:
    return {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}


def test_prefect_yaml_declares_what_serve_serves(served: dict):
    from flows.operations import CORPUS_UPDATED, CRAWL_COMPLETED

    in_yaml = declared()
    assert set(in_yaml) == set(served)
    for name, deployment in served.items():
        module, _, function = deployment.entrypoint.rpartition(".")  # the runner writes module.function
        assert in_yaml[name]["entrypoint"] == f"{module}:{function}", name
        assert in_yaml[name]["parameters"] == deployment.parameters, name
        triggers = [{"expect": sorted(t.expect), "match": t.match.model_dump(), "parameters": t.parameters}
                    for t in deployment.triggers]
        assert [{"expect": sorted(t["expect"]), "match": t["match"], "parameters": t["parameters"]}
                for t in in_yaml[name].get("triggers", [])] == triggers, name
        intervals = [s.schedule.interval.total_seconds() for s in deployment.schedules]
        assert [s["interval"] for s in in_yaml[name].get("schedules", [])] == intervals, name
    assert [t.expect for t in served["prepare"].triggers] == [{CRAWL_COMPLETED}]
    assert [t.expect for t in served["train"].triggers] == [{CORPUS_UPDATED}]
    assert [t.expect for t in served["evaluate-champion"].triggers] == [{CORPUS_UPDATED}]
    assert served["evaluate-champion"].triggers[0].parameters["version"] == "{{ event.payload.version }}"
    assert served["train"].triggers[0].parameters["version"] == "{{ event.payload.version }}"
    assert served["train"].concurrency_limit == in_yaml["train"]["concurrency_limit"] == 1


def test_finetune_runs_on_each_new_champion_one_at_a_time(served: dict):
    from flows.champion import CHAMPION_RESOURCE, CHAMPION_UPDATED

    finetune = served["finetune"]
    assert [t.expect for t in finetune.triggers] == [{CHAMPION_UPDATED}]
    assert finetune.triggers[0].match.model_dump() == {"prefect.resource.id": CHAMPION_RESOURCE}
    assert finetune.triggers[0].parameters["version"] == "{{ event.payload.version }}"
    assert finetune.concurrency_limit == declared()["finetune"]["concurrency_limit"] == 1


def test_entrypoints_load_as_modules_without_shadowing_the_pipeline_package(monkeypatch: pytest.MonkeyPatch):
    from prefect.flows import load_flow_from_entrypoint

    monkeypatch.chdir(ROOT)
    names = {load_flow_from_entrypoint(d["entrypoint"]).name for d in declared().values()}
    assert names == {"crawl-source", "prepare-corpus", "train-on-corpus", "evaluate-champion",
                     "tokenmill-pipeline", "finetune-champion"}


def test_recrawl_interval_follows_the_source_and_defaults_to_a_week():
    from flows.serve import DEFAULT_RECRAWL, recrawl_interval

    assert recrawl_interval(SimpleNamespace(recrawl_after_s=12 * 3600)) == timedelta(hours=12)
    assert recrawl_interval(SimpleNamespace(recrawl_after_s=None)) == DEFAULT_RECRAWL == timedelta(days=7)
    assert recrawl_interval(SimpleNamespace()) == DEFAULT_RECRAWL


def test_a_source_never_crawled_or_overdue_is_crawled_at_once_else_on_its_turn():
    from datetime import datetime, timezone

    from flows.serve import FIRST_RUN_DELAY, recrawl_anchor

    now = datetime(2026, 1, 10, tzinfo=timezone.utc)
    week = timedelta(days=7)

    def first_run(anchor):  # the first anchor + k * interval not before now, as Prefect schedules it
        k = 0
        while anchor + k * week < now:
            k += 1
        return anchor + k * week

    assert first_run(recrawl_anchor(week, None, now)) == now + FIRST_RUN_DELAY
    assert first_run(recrawl_anchor(week, now - timedelta(days=9), now)) == now + FIRST_RUN_DELAY
    assert first_run(recrawl_anchor(week, now - timedelta(days=2), now)) == now + timedelta(days=5)
