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
from prefect.tasks import exponential_backoff

from flows.champion import champion_number
from flows.commands import retry_transient
from flows.locks import path_lock
from flows.parameters import check_deployment_run
from pipeline import stages
from pipeline.params import load_params
from tokenmill.locations import without_credentials
from tokenmill.errors import UserError

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
    current = champion_number(params)
    if current is None:
        raise UserError(f"registered model {model!r} has no champion in {without_credentials(params.tracking.tracking_uri)} "
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
