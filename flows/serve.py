"""Serve tokenmill's deployments from this process (no work pool needed): `make serve`.

    python -m flows.serve [--params params.yaml] [--start-server [--port 4200]]

Deployments (prefect.yaml declares the same ones for a work pool, `prefect deploy --all`):
  crawl-<source>   every `recrawl_after` of the source (DEFAULT_RECRAWL when it has none), counted
                   from its last crawl; at once when it was never crawled or is overdue
  prepare          on tokenmill.crawl.completed
  train            on tokenmill.corpus.updated, with that event's corpus version; one run at a time
  evaluate-champion  on tokenmill.corpus.updated: the registry's champion measured on that corpus version
  pipeline         the whole pipeline, run on demand (`prefect deployment run tokenmill-pipeline/pipeline`)
  finetune         on tokenmill.champion.updated (evaluate moved the registry's champion): SFT, reward, DPO
With --start-server a local Prefect server is started on 127.0.0.1 first (its UI on the same port),
locked with an auth string and CSRF protection (flows/server.py); otherwise the server named by
PREFECT_API_URL is used. A run a deployment starts accepts only checked parameters (flows/parameters.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timedelta, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml
from prefect import serve
from prefect.events import DeploymentEventTrigger
from prefect.schedules import Interval
from prefect.types.entrypoint import EntrypointType

from flows.operations import (CORPUS_UPDATED, CRAWL_COMPLETED, crawl_source, evaluate_champion, prepare_corpus,
                              train_on_corpus)
from flows.pipeline import pipeline
from pipeline.params import load_params
from tokenmill.errors import UserError

DEFAULT_RECRAWL = timedelta(days=7)
TRAIN_CONCURRENCY = 1  # one training at a time: they share the workspace's model and checkpoints
FINETUNE_CONCURRENCY = 1  # one fine-tuning at a time: they share finetune.out


# Module entrypoints: loaded by file path, flows/pipeline.py would be imported as `pipeline` and shadow the
# application package of that name.
MODULE_ENTRYPOINT = {"entrypoint_type": EntrypointType.MODULE_PATH}
PREFECT_YAML_HEADER = """\
# Prefect deployments of tokenmill, for a work pool; written by `python -m flows.serve --write-prefect-yaml`
# from the deployment table in flows/serve.py (edit that, not this). `make serve` serves the same ones
# from one process instead.
#   make prefect                      # start a local Prefect server (UI on http://127.0.0.1:4200)
#   prefect work-pool create tokenmill --type process
#   prefect deploy --all              # register the deployments below
#   prefect worker start --pool tokenmill
name: tokenmill
prefect-version: 3.8.8

build: null
push: null

# The worker runs flows from this checkout (its code, params.yaml and DVC repository).
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{ $PWD }}"

definitions:
  work_pool: &pool
    name: tokenmill
    work_queue_name: default

"""

# Prefect's scheduler (a loop every minute) schedules only runs not yet due: leave it time to see the first.
FIRST_RUN_DELAY = timedelta(minutes=2)


def recrawl_interval(source) -> timedelta:
    seconds = getattr(source, "recrawl_after_s", None)  # crawler.config.Source, parsed from `recrawl_after`
    return timedelta(seconds=seconds) if seconds else DEFAULT_RECRAWL


def recrawl_anchor(interval: timedelta, last_crawl: datetime | None, now: datetime) -> datetime:
    """Interval runs fall at anchor + k * interval. Anchored at the last crawl, a source crawled
    recently waits for its turn; one never crawled, or overdue, is crawled FIRST_RUN_DELAY from now
    (anchored at now, Prefect would wait a whole interval first)."""
    if last_crawl is not None and last_crawl + interval > now:
        return last_crawl
    return now + FIRST_RUN_DELAY - interval


def last_crawl(params, source: str) -> datetime | None:
    stats = Path(params.paths.crawl) / "stats.json"
    try:
        crawled = source in (json.loads(stats.read_text(encoding="utf-8")).get("sources") or {})
    except (OSError, ValueError):
        return None
    return datetime.fromtimestamp(stats.stat().st_mtime, timezone.utc) if crawled else None


@dataclass(frozen=True)
class Deployment:
    """One served deployment, declared once: `deployments()` serves it and `prefect_yaml()` writes it for
    a work pool (`python -m flows.serve --write-prefect-yaml`; a test checks prefect.yaml is current)."""

    name: str
    flow: Callable  # a Prefect flow of flows/
    description: str
    on: str | None = None  # the event that starts it (None: on demand)
    match: str | None = None  # the event's resource id (a * pattern)
    event_parameters: tuple[str, ...] = ()  # parameters taken from the event's payload
    concurrency: int | None = None  # runs at once


def _table() -> tuple[Deployment, ...]:
    """Every deployment but the per-source crawl ones (those come from params' crawl.sources)."""
    from flows.champion import CHAMPION_RESOURCE, CHAMPION_UPDATED
    from flows.finetune import finetune_champion

    return (
        Deployment("prepare", prepare_corpus, f"Prepare and publish the corpus after each crawl; emits {CORPUS_UPDATED}.",
                   on=CRAWL_COMPLETED, match="tokenmill.source.*"),
        Deployment("train", train_on_corpus, "Tokenize, train and evaluate on the corpus version of the event; "
                   "the promotion gate moves the champion.", on=CORPUS_UPDATED, match="tokenmill.corpus",
                   event_parameters=("version",), concurrency=TRAIN_CONCURRENCY),
        Deployment("evaluate-champion", evaluate_champion, "Evaluate the registry's champion on the corpus version of "
                   "the event, with its own tokenizer.", on=CORPUS_UPDATED, match="tokenmill.corpus",
                   event_parameters=("version",)),
        Deployment("pipeline", pipeline, "The whole pipeline, stages DVC finds up to date skipped."),
        Deployment("finetune", finetune_champion, "Fine-tune (SFT, reward model, DPO) each new pre-training champion.",
                   on=CHAMPION_UPDATED, match=CHAMPION_RESOURCE, event_parameters=("model", "version"),
                   concurrency=FINETUNE_CONCURRENCY),
    )


def _event_parameters(deployment: Deployment, params_path: str) -> dict:
    return {**{key: f"{{{{ event.payload.{key} }}}}" for key in deployment.event_parameters},
            "params_path": params_path}


def deployments(params_path: str = "params.yaml") -> list:
    """The runner deployments: one crawl-<source> per source of params' crawl.sources, then the table."""
    from crawler.config import load_source

    params = load_params(params_path)
    found = []
    now = datetime.now(timezone.utc)
    for name in params.crawl.sources:
        interval = recrawl_interval(load_source(name, Path(params.paths.sources)))
        schedule = Interval(interval, anchor_date=recrawl_anchor(interval, last_crawl(params, name), now))
        found.append(crawl_source.to_deployment(
            name=f"crawl-{name}", schedule=schedule, **MODULE_ENTRYPOINT,
            parameters={"source": name, "params_path": params_path},
            description=f"Re-crawl {name} every recrawl_after, then emit {CRAWL_COMPLETED}."))
    for d in _table():
        triggers = [DeploymentEventTrigger(expect={d.on}, match={"prefect.resource.id": d.match},
                                           parameters=_event_parameters(d, params_path))] if d.on else None
        found.append(d.flow.to_deployment(name=d.name, description=d.description, concurrency_limit=d.concurrency,
                                          parameters={"params_path": params_path}, triggers=triggers,
                                          **MODULE_ENTRYPOINT))
    return found


def prefect_yaml(params_path: str = "params.yaml") -> str:
    """prefect.yaml: the same deployments for a work pool (`prefect deploy --all`)."""
    from crawler.config import load_source

    params = load_params(params_path)
    entries = []
    for name in params.crawl.sources:
        interval = recrawl_interval(load_source(name, Path(params.paths.sources)))
        entries.append({"name": f"crawl-{name}", "description": f"Re-crawl {name} every recrawl_after, then emit "
                        f"{CRAWL_COMPLETED}.", "entrypoint": _entrypoint(crawl_source),
                        "parameters": {"source": name, "params_path": params_path}, "work_pool": "POOL",
                        "schedules": [{"interval": int(interval.total_seconds()), "active": True}]})
    for d in _table():
        entry = {"name": d.name, "description": d.description, "entrypoint": _entrypoint(d.flow)}
        if d.concurrency:
            entry["concurrency_limit"] = d.concurrency
        entry.update(parameters={"params_path": params_path}, work_pool="POOL")
        if d.on:
            entry["triggers"] = [{"type": "event", "enabled": True, "expect": [d.on],
                                  "match": {"prefect.resource.id": d.match},
                                  "parameters": _event_parameters(d, params_path)}]
        entries.append(entry)
    body = yaml.safe_dump({"deployments": entries}, sort_keys=False, width=120, allow_unicode=True)
    return PREFECT_YAML_HEADER + body.replace("work_pool: POOL", "work_pool: *pool")


def _entrypoint(flow) -> str:
    return f"{flow.fn.__module__}:{flow.fn.__name__}"


def serve_with(params_path: str, settings: dict[str, str]) -> None:
    """Serve the deployments with these Prefect settings, in this process and in the flow-run
    processes the runner starts (they inherit the environment)."""
    import prefect.settings

    os.environ.update(settings)
    with prefect.settings.temporary_settings(updates={getattr(prefect.settings, k): v for k, v in settings.items()}):
        serve(*deployments(params_path))  # built now: the first crawl's time counts from here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file the runs read")
    parser.add_argument("--start-server", action="store_true", help="start a local Prefect server first")
    parser.add_argument("--port", type=int, default=4200, help="its port on 127.0.0.1 (default: 4200)")
    parser.add_argument("--write-prefect-yaml", action="store_true",
                        help="write prefect.yaml (the same deployments, for a work pool) and exit")
    args = parser.parse_args(argv)
    if args.write_prefect_yaml:
        Path("prefect.yaml").write_text(prefect_yaml(args.params), encoding="utf-8")
        return 0
    try:
        load_params(args.params)  # a bad params file: one line, before starting anything
        from flows.server import AUTH_FILE, auth_string, local_server, read_auth_string

        if not args.start_server:  # a server started elsewhere; `make prefect`'s wants the auth string
            auth = os.environ.get("PREFECT_API_AUTH_STRING") or (read_auth_string() if AUTH_FILE.exists() else None)
            serve_with(args.params, {"PREFECT_API_AUTH_STRING": auth} if auth else {})
            return 0
        auth = auth_string()
        with local_server(args.port, log=Path(".prefect/server.log"), auth=auth) as api_url:
            print(f"Prefect server and UI on {api_url.removesuffix('/api')} (log: .prefect/server.log; "
                  f"API auth string in {AUTH_FILE})")
            serve_with(args.params, {"PREFECT_API_URL": api_url, "PREFECT_API_AUTH_STRING": auth})
        return 0
    except UserError as exc:
        print(f"tokenmill serve: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
