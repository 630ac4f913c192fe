"""The champion, seen from the flows: the registry's `champion` alias (training/registry.py) is the one
champion; when an evaluation moves it, the flow emits tokenmill.champion.updated (training/ cannot: it
does not import Prefect), which starts the `finetune` deployment."""

from __future__ import annotations

from prefect import get_run_logger
from prefect.events import emit_event

CHAMPION_UPDATED = "tokenmill.champion.updated"
CHAMPION_RESOURCE = "tokenmill.champion"


def champion_number(params) -> str | None:
    """The version number holding the registry's champion alias, or None (no champion, or no tracking)."""
    if not params.tracking.enabled:
        return None
    from training.registry import champion_version  # mlflow: imported when needed

    found = champion_version(params.tracking)
    return str(found.version) if found is not None else None


def announce_champion(params, before: str | None) -> dict | None:
    """Emit tokenmill.champion.updated when the champion alias holds another version than `before`.
    Returns the event's payload, or None."""
    version = champion_number(params)
    if version is None or version == before:
        return None
    from training.registry import champion_version

    name = params.tracking.registered_model
    payload = {"model": name, "version": version, "run_id": champion_version(params.tracking).run_id}
    emit_event(CHAMPION_UPDATED, resource={"prefect.resource.id": CHAMPION_RESOURCE},
               related=[{"prefect.resource.id": f"{CHAMPION_RESOURCE}.{name}.v{version}",
                         "prefect.resource.role": "model-version"}],
               payload=payload)
    get_run_logger().info("%s v%s is the new champion (was %s): emitted %s", name, version, before,
                          CHAMPION_UPDATED)
    return payload
