"""Train stage: a Lightning fit over the token memmaps, resumable, tracked in MLflow (global rank 0 only).

Output directory (replaced atomically, written by rank 0):
  model.pt            {"state_dict", "model_config", "train_config", "vocab_size", "eot_id", "step"}: see load_model
  tokenizer.json      copy of the tokenizer the tokens were made with
  config.json         train and model config, tokens path, run identity
  stats.json          steps, tokens seen, parameters by kind, memory (estimated and measured), loss,
                      tokens/s (per device), MFU, MLflow run id
  history/train.csv   step, loss, lr, tokens_per_s, ...        history/val.csv  step, loss
  plots/loss.png      train and validation loss
  run.json            MLflow run id, experiment id, tracking uri (absent when tracking is disabled)
Checkpoints live beside it in `<out>.checkpoints/` (DVC deletes a stage's outputs before a rerun); see
training/checkpoints.py for what they hold and when they are resumed, set aside or pruned.

Multi-device: Lightning's DDP launcher re-runs the calling command in every rank, so launch training
as its own process: `tokenmill train` (what dvc.yaml and the Prefect flow do).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from tokenmill.locations import without_credentials
from tokenmill.config import flatten, to_dict
from tokenmill.errors import TransientError, UserError
from tokenmill.progress import is_terminal
from tokenmill.stage import atomic_directory, write_json
from training import measure
from training import tracking as mlf
from training.callbacks import StepCheckpoints, StepProgressBar, StepProgressLines
from training.checkpoints import AtomicCheckpointIO, choose_resume, cpu_threads, load_checkpoint, run_identity, say
from training.config import ModelConfig, TrackingConfig, TrainConfig
from training.data import TokenDataModule
from training.model import GPT
from training.module import GPTModule
from training.strategies import make_strategy, resolve_precision
from training.tokenizer import read_meta


class _DropLightningTips(logging.Filter):
    """Lightning's "💡 Tip: ... try installing litlogger / litmodels" adverts: not for our users."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


_LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                           "lightning_utilities.core.rank_zero")


def quiet_lightning() -> None:
    """Keep Lightning's own noise out of the stage's log (idempotent): its "Tip" adverts, and the
    FutureWarning torch >= 2.10 raises each fit about the LeafSpec that lightning/pytorch/utilities/_pytree.py
    builds (Lightning's code, not ours; nothing to act on)."""
    for name in _LIGHTNING_INFO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLightningTips) for f in logger.filters):
            logger.addFilter(_DropLightningTips())
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)


def make_trainer(config: TrainConfig, precision: str, callbacks: list) -> L.Trainer:
    quiet_lightning()
    return L.Trainer(
        accelerator=config.accelerator,
        devices=int(config.devices) if str(config.devices).lstrip("-").isdigit() else config.devices,
        strategy=make_strategy(config),
        num_nodes=config.num_nodes,
        precision=precision,
        max_steps=config.max_steps,
        accumulate_grad_batches=config.accumulate_grad_batches,
        gradient_clip_val=config.grad_clip or None,
        val_check_interval=config.val_every * config.accumulate_grad_batches,  # counted in micro-batches
        check_val_every_n_epoch=None,
        limit_val_batches=config.val_batches,
        num_sanity_val_steps=0,
        use_distributed_sampler=False,  # TokenDataModule shards by rank itself
        logger=False,  # global rank 0 gets its MLflow logger once its rank is known (below)
        enable_checkpointing=False,  # StepCheckpoints saves instead of ModelCheckpoint
        enable_progress_bar=is_terminal(),
        enable_model_summary=False,
        plugins=[AtomicCheckpointIO()],
        callbacks=callbacks,
    )


def train(tokens: Path, out: Path, config: TrainConfig, model: ModelConfig, tracking: TrackingConfig,
          checkpoints: Path | None = None) -> dict | None:
    """Train a GPT on tokens/train.bin; write `out` (see module doc). Returns a summary (rank 0; None elsewhere).

    Raises TransientError after a SIGTERM (a checkpoint was saved: the same command continues)."""
    tokens, out = Path(tokens), Path(out)
    checkpoints = Path(checkpoints) if checkpoints else out.with_name(out.name + ".checkpoints")
    meta = read_meta(tokens)
    corpus = Path(meta["corpus"]) if meta.get("corpus") else None
    precision = resolve_precision(config)
    identity = run_identity(config, model, meta, tokens)
    data = TokenDataModule(tokens, model.block_size, config.batch_size, config.accumulate_grad_batches,
                           config.seed, config.val_batches, config.num_workers, config.mixture,
                           config.rehydration if config.rehydrate else None)  # checks the mixture

    saver = StepCheckpoints(checkpoints, config.checkpoint_every, config.keep_checkpoints, config.val_every)
    progress = StepProgressBar() if is_terminal() else StepProgressLines(config.progress_every_s)
    trainer = make_trainer(config, precision, [saver, progress])
    # Lightning's launcher starts the other ranks inside fit(), after rank 0 has tidied the directory.
    resume_from, info = choose_resume(checkpoints, identity, may_move=trainer.is_global_zero)
    run_id = (info or {}).get("mlflow_run_id")
    threads_before = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(info))  # the weights depend on it: the same count as the resumed run
    try:
        return _fit(Fit(tokens, out, config, model, tracking, meta, corpus, precision, identity, data, saver,
                        trainer, resume_from, run_id))
    finally:
        torch.set_num_threads(threads_before)  # in-process callers keep their own setting


@dataclass
class Fit:
    """One training: its inputs and configs, and the Lightning pieces that run it."""

    tokens: Path
    out: Path
    config: TrainConfig
    model: ModelConfig
    tracking: TrackingConfig
    meta: dict
    corpus: Path | None
    precision: str
    identity: dict
    data: TokenDataModule
    saver: StepCheckpoints
    trainer: L.Trainer
    resume_from: Path | None
    run_id: str | None  # the MLflow run of the checkpoint resumed from


def _fit(fit: Fit) -> dict | None:
    """Fit, then (rank 0) write the model and return the summary; None on the other ranks."""
    L.seed_everything(fit.config.seed, workers=True, verbose=False)
    module = GPTModule(fit.model, fit.config, fit.meta["vocab_size"], fit.identity, mask_id=fit.meta.get("mask_id"))
    sizes = _sizes(module.model, fit.config, fit.precision, fit.trainer.world_size)
    logger = monitor = None
    if fit.trainer.is_global_zero:
        say(measure.report(sizes["parameters"], sizes["memory_estimate_gib"], fit.precision))
        if fit.tracking.enabled:
            logger, monitor = _open_run(fit, module, sizes)
    _fit_to_the_end(fit, module, monitor)
    if not fit.trainer.is_global_zero:
        return None  # rank 0 reports; another rank printing its own result would interleave with it
    summary = _summary(fit, module, sizes, logger)
    state_dict = _model_weights(fit.saver.last_path)
    with atomic_directory(fit.out) as tmp:
        _write_outputs(tmp, state_dict, module.history, fit.trainer.global_step, fit.tokens, fit.meta, fit.config,
                       fit.model, fit.identity, logger, fit.tracking)
        write_json(tmp / "stats.json", summary)
    if logger is not None:
        mlf.log_artifacts(fit.tracking, logger.run_id, fit.out, fit.tokens, fit.corpus)
    return summary


def _open_run(fit: Fit, module: GPTModule, sizes: dict):
    """The MLflow logger (the resumed run's, or a new run that records what it trains on) and the
    system-metrics monitor."""
    run_id = mlf.existing_run(fit.tracking, fit.run_id)
    corpus = fit.corpus if fit.corpus is not None and fit.corpus.exists() else None
    md5 = mlf.corpus_hash(corpus)[0] if run_id is None and corpus is not None else None
    name = mlf.run_name(fit.model.preset, fit.config.max_steps, md5, fit.config.objective, fit.meta.get("kind"))
    logger = mlf.make_logger(fit.tracking, run_id, name=name)
    fit.trainer.logger = logger
    module.mlflow_run_id = logger.run_id
    if run_id is None:  # a new run: say what it is and which data it saw, once
        logger.log_hyperparams(flatten({"train": fit.config, "model": fit.model, "precision_resolved": fit.precision,
                                        "parameters": sizes["parameters"], "cpu_threads": torch.get_num_threads(),
                                        "tokens": {"path": fit.tokens.as_posix(), **fit.meta}}))
        mlf.client(fit.tracking).log_dict(logger.run_id, sizes, "model_size.json")
        if corpus is not None:
            mlf.log_corpus_input(fit.tracking, logger.run_id, corpus)
    return logger, _system_metrics(fit.tracking, logger.run_id, resumed=run_id is not None)


def _fit_to_the_end(fit: Fit, module: GPTModule, monitor) -> None:
    """trainer.fit; a SIGTERM ends it at a saved checkpoint with a TransientError (the same command
    continues), and the final step always has its checkpoint."""
    sigterm = False
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Lightning's bars print to stdout; stdout is for results
            fit.trainer.fit(module, datamodule=fit.data, ckpt_path=fit.resume_from)
    except SIGTERMException:  # StepCheckpoints saved at the step where the signal was seen (if in training)
        sigterm = True
    finally:
        if monitor is not None:
            monitor.finish()
    saver, trainer = fit.saver, fit.trainer
    if sigterm or saver.interrupted_at is not None:
        saved = f"saved {saver.last_path}" if saver.interrupted_at is not None else (
            f"newest checkpoint {saver.last_path}" if saver.saved_any else "no checkpoint yet")
        raise TransientError(f"stopped by SIGTERM at step {trainer.global_step}; {saved}; "
                             "run the same command to continue")
    if saver.last_path.name != f"step-{trainer.global_step:08d}.ckpt":
        saver.save(trainer)  # fit had nothing left to do: the checkpoint it resumed from is the final one


def _summary(fit: Fit, module: GPTModule, sizes: dict, logger) -> dict:
    """The stage's stats (stats.json): what was trained, how fast, on what, with which memory."""
    trainer, precision = fit.trainer, fit.precision
    measured = measure.peak_memory(module.device)
    train_history, val_history = module.history["train"], module.history["val"]
    last = train_history[-1] if train_history else {}
    device_name, peak = measure.device_peak_flops(module.device)
    estimate = sizes["memory_estimate_gib"].get(precision)
    say("train: memory measured " + ", ".join(f"{k} {v:.3f} GiB" for k, v in measured.items())
        + (f" (estimated weights + grads + AdamW state: {estimate['total']:.3f} GiB)" if estimate else ""))
    if logger is not None:
        logger.log_metrics({f"memory/{k}": v for k, v in measured.items()}, step=trainer.global_step)
    return {
        "stage": "train",
        "out": fit.out.as_posix(),
        "steps": trainer.global_step,
        "tokens_seen": module.samples_seen * fit.model.block_size,
        "resumed_from": str(fit.resume_from) if fit.resume_from else None,
        "checkpoint": str(fit.saver.last_path),
        "parameters": sizes["parameters"]["total"],
        "parameters_by_kind": sizes["parameters"],
        "precision": precision,
        "memory_estimate_gib": estimate,
        "memory_measured_gib": measured,
        "train_loss": last.get("loss"),
        "val_loss": val_history[-1]["loss"] if val_history else None,
        "tokens_per_s": last.get("tokens_per_s"),
        "tokens_per_s_per_device": last.get("tokens_per_s_per_device"),
        "devices": trainer.world_size,
        "device": device_name,
        "flops_per_token": sizes["flops_per_token"],
        "peak_flops_per_device": peak,
        "mfu": last.get("mfu"),
        "run_id": logger.run_id if logger is not None else None,
    }


def _sizes(gpt: GPT, config: TrainConfig, precision: str, world_size: int) -> dict:
    breakdown = measure.parameter_breakdown(gpt)
    shards = world_size if config.strategy in ("fsdp", "fsdp2") else 1
    c = gpt.config
    return {"parameters": breakdown, "memory_estimate_gib": measure.memory_estimate(breakdown["total"], shards),
            "flops_per_token": measure.flops_per_token(breakdown["total"], gpt.wpe.weight.numel(), c.n_layer,
                                                       c.n_head, c.n_embd, c.block_size),
            "flops_formula": "6*N + 12*L*H*Q*T, N = parameters without position embeddings",
            "precision": precision}


def _system_metrics(tracking: TrackingConfig, run_id: str, resumed: bool):
    """MLflow's system metrics (CPU, memory, disk, network; GPU with nvidia-ml-py) for the run, rank 0."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=10, resume_logging=resumed,
                                       tracking_uri=mlf.store_uri(tracking.tracking_uri))
        monitor.start()
        return monitor
    except Exception as exc:  # psutil missing or the store refused: training goes on without them
        say(f"train: MLflow system metrics not logged ({type(exc).__name__}: {exc})")
        return None


def _model_weights(checkpoint: Path) -> dict:
    """The GPT's weights from a training checkpoint (keys without the module's "model." prefix). Read from
    the checkpoint that every rank helped write, so FSDP's sharded weights arrive whole."""
    state = load_checkpoint(checkpoint)["state_dict"]
    return {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}


def _write_outputs(tmp: Path, state_dict: dict, history: dict, step: int, tokens: Path, meta: dict,
                   config: TrainConfig, model: ModelConfig, identity: dict, logger, tracking: TrackingConfig) -> None:
    torch.save({"state_dict": state_dict, "model_config": to_dict(model), "train_config": to_dict(config),
                "objective": config.objective,
                "vocab_size": meta["vocab_size"], "eot_id": meta.get("eot_id"), "step": step}, tmp / "model.pt")
    if (tokens / "tokenizer.json").is_file():
        shutil.copyfile(tokens / "tokenizer.json", tmp / "tokenizer.json")
    write_json(tmp / "config.json", {"train": to_dict(config), "model": to_dict(model), "tokens": tokens.as_posix(),
                                     "identity": identity, "steps": step})
    _write_csv(tmp / "history" / "train.csv", history["train"],
               ["step", "loss", "lr", "tokens_per_s", "tokens_per_s_per_device", "mfu"])
    _write_csv(tmp / "history" / "val.csv", history["val"], ["step", "loss"])
    plot_loss(history, tmp / "plots" / "loss.png")
    if logger is not None:
        write_json(tmp / "run.json", run_record(logger.run_id, logger.experiment_id, tracking.experiment,
                                                tracking.tracking_uri))


def run_record(run_id: str, experiment_id: str, experiment: str, tracking_uri: str) -> dict:
    """run.json: where the training's MLflow run is; the tracking URI without credentials (user:token@)."""
    return {"run_id": run_id, "experiment_id": experiment_id, "experiment": experiment,
            "tracking_uri": without_credentials(tracking_uri)}


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def plot_loss(history: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for split, style in (("train", "-"), ("val", "o-")):
        rows = history[split]
        if rows:
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], style, label=f"{split} loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def load_model(model_dir: Path, map_location: str | torch.device = "cpu") -> GPT:
    """The trained GPT from model_dir/model.pt (causal or bidirectional, as trained), in eval mode."""
    path = Path(model_dir) / "model.pt"
    if not path.is_file():
        raise UserError(f"{path}: not found (run the train stage first)")
    return GPT.from_record(torch.load(path, map_location=map_location, weights_only=True), str(path))
