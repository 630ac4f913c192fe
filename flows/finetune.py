"""Fine-tuning after pre-training, chained by an event:

    evaluate (flows/pipeline.py: the registry's champion alias moved)
        ─ tokenmill.champion.updated {model, version, run_id} ─►
    finetune (flows/serve.py): `tokenmill finetune sft` on that champion, then `reward` on the SFT model
        (DPO's held-out win rate is judged by it), then `dpo` against the SFT model

The stages run in this process through pipeline.stages.finetune, every option from params' `finetune`
section; each is one MLflow run, registered and gated as `tokenmill finetune` registers it.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.events import emit_event
from prefect.tasks import exponential_backoff

from flows.locks import path_lock
from flows.parameters import check_deployment_run
from flows.pipeline import retry_transient
from pipeline import stages
from pipeline.params import load_params
from tokenmill.locations import without_credentials
from tokenmill.errors import UserError

CHAMPION_UPDATED = "tokenmill.champion.updated"
CHAMPION_RESOURCE = "tokenmill.champion"


def champion(params):
    """The ModelVersion of `tracking.registered_model` holding the champion alias, or None."""
    if not params.tracking.enabled:
        return None
    from training.registry import champion_version  # mlflow: imported when needed

    return champion_version(params.tracking)


def champion_version(params) -> str | None:
    found = champion(params)
    return str(found.version) if found is not None else None


def announce_champion(params, before: str | None) -> dict | None:
    """Emit tokenmill.champion.updated when the champion alias holds another version than `before`
    (training/ cannot: it does not import Prefect). Returns the event's payload, or None."""
    holder = champion(params)
    if holder is None or str(holder.version) == before:
        return None
    name, version = params.tracking.registered_model, str(holder.version)
    payload = {"model": name, "version": version, "run_id": holder.run_id}
    emit_event(CHAMPION_UPDATED, resource={"prefect.resource.id": CHAMPION_RESOURCE},
               related=[{"prefect.resource.id": f"{CHAMPION_RESOURCE}.{name}.v{version}",
                         "prefect.resource.role": "model-version"}],
               payload=payload)
    get_run_logger().info("%s v%s is the new champion (was %s): emitted %s", name, version, before,
                          CHAMPION_UPDATED)
    return payload


@task(name="finetune", task_run_name="finetune-{stage}", retries=2,
      retry_delay_seconds=exponential_backoff(backoff_factor=30), retry_condition_fn=retry_transient)
def finetune_task(params_path: str, stage: str, base: str | None = None, reward_model: str | None = None) -> dict:
    """One `tokenmill finetune STAGE`; retried only on a TransientError, never on a mistake to fix."""
    params = load_params(params_path)
    summary = stages.finetune(params, stage, base=base, reward_model=reward_model)
    get_run_logger().info("finetune %s: %s", stage, {k: v for k, v in summary.items() if not isinstance(v, dict)})
    return summary


@flow(name="finetune-champion", log_prints=True)
def finetune_champion(model: str | None = None, version: str | None = None,
                      params_path: str = "params.yaml") -> dict:
    """SFT on the pre-training champion, the reward model on the SFT model, DPO against the SFT model.

    `model`/`version` come from the event; when the alias has moved on since (a newer champion), this
    run does nothing: that champion's own event runs the fine-tuning on it."""
    check_deployment_run(params_path, model=model, version=version)
    logger = get_run_logger()
    params = load_params(params_path)
    model = model or params.tracking.registered_model
    if model != params.tracking.registered_model:
        raise UserError(f"{params_path}: tracking.registered_model is {params.tracking.registered_model!r}, "
                        f"not the event's {model!r}")
    current = champion_version(params)
    if current is None:
        raise UserError(f"registered model {model!r} has no champion in "
                        f"{without_credentials(params.tracking.tracking_uri)} "
                        f"(tracking enabled and tracking.register on, evaluate a model first)")
    if version is not None and str(version) != current:
        logger.info("%s v%s is no longer the champion (v%s is): nothing to do", model, version, current)
        return {"skipped": True, "version": str(version), "champion": current}
    from training.registry import CHAMPION

    with path_lock("finetune"):  # one fine-tuning at a time writes finetune.out
        sft = finetune_task(params_path, "sft", base=f"{model}@{CHAMPION}")
        reward = finetune_task(params_path, "reward", base=sft["out"])
        dpo = finetune_task(params_path, "dpo", base=sft["out"], reward_model=reward["out"])
    return {"skipped": False, "model": model, "version": current, "sft": sft, "reward": reward, "dpo": dpo}
