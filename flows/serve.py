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
from pathlib import Path

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


def deployments(params_path: str = "params.yaml") -> list:
    """The runner deployments, built from params (the sources to crawl) and each source's YAML."""
    from crawler.config import load_source

    params = load_params(params_path)
    # Module entrypoints: loaded by file path, flows/pipeline.py would be imported as `pipeline`
    # and shadow the application package of that name.
    module = {"entrypoint_type": EntrypointType.MODULE_PATH}
    found = []
    now = datetime.now(timezone.utc)
    for name in params.crawl.sources:
        interval = recrawl_interval(load_source(name, Path(params.paths.sources)))
        schedule = Interval(interval, anchor_date=recrawl_anchor(interval, last_crawl(params, name), now))
        found.append(crawl_source.to_deployment(
            name=f"crawl-{name}", schedule=schedule, **module,
            parameters={"source": name, "params_path": params_path},
            description=f"Re-crawl {name} every recrawl_after, then emit {CRAWL_COMPLETED}."))
    found.append(prepare_corpus.to_deployment(
        name="prepare", **module, parameters={"params_path": params_path},
        triggers=[DeploymentEventTrigger(expect={CRAWL_COMPLETED}, match={"prefect.resource.id": "tokenmill.source.*"},
                                         parameters={"params_path": params_path})],
        description=f"Prepare and publish the corpus after each crawl; emits {CORPUS_UPDATED}."))
    found.append(train_on_corpus.to_deployment(
        name="train", **module, concurrency_limit=TRAIN_CONCURRENCY, parameters={"params_path": params_path},
        triggers=[DeploymentEventTrigger(expect={CORPUS_UPDATED}, match={"prefect.resource.id": "tokenmill.corpus"},
                                         parameters={"version": "{{ event.payload.version }}",
                                                     "params_path": params_path})],
        description="Tokenize, train and evaluate on the corpus version of the event; crown the champion."))
    found.append(evaluate_champion.to_deployment(
        name="evaluate-champion", **module, parameters={"params_path": params_path},
        triggers=[DeploymentEventTrigger(expect={CORPUS_UPDATED}, match={"prefect.resource.id": "tokenmill.corpus"},
                                         parameters={"version": "{{ event.payload.version }}",
                                                     "params_path": params_path})],
        description="Evaluate the registry's champion on the corpus version of the event, with its own tokenizer."))
    found.append(pipeline.to_deployment(name="pipeline", **module, parameters={"params_path": params_path},
                                        description="The whole pipeline, stages DVC finds up to date skipped."))
    found.extend(finetune_deployments(params_path))
    return found


def finetune_deployments(params_path: str) -> list:
    """finetune: SFT, reward model and DPO on each new pre-training champion (flows/finetune.py)."""
    from flows.champion import CHAMPION_RESOURCE, CHAMPION_UPDATED
    from flows.finetune import finetune_champion

    return [finetune_champion.to_deployment(
        name="finetune", entrypoint_type=EntrypointType.MODULE_PATH, concurrency_limit=FINETUNE_CONCURRENCY,
        parameters={"params_path": params_path},
        triggers=[DeploymentEventTrigger(expect={CHAMPION_UPDATED}, match={"prefect.resource.id": CHAMPION_RESOURCE},
                                         parameters={"model": "{{ event.payload.model }}",
                                                     "version": "{{ event.payload.version }}",
                                                     "params_path": params_path})],
        description="Fine-tune (SFT, reward model, DPO) each new pre-training champion.")]


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
    args = parser.parse_args(argv)
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
