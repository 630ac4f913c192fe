"""The model registry: a trained model as an MLflow pyfunc (prompt in, generated text out, tokenizer
included), registered under `tracking.registered_model`, and a promotion gate for the `champion` alias.

The gate: a new version takes the alias `champion` only when its validation bits per byte are lower
than the current champion's, measured on the same evaluation set (the `eval_set` digest of the text,
see training/evaluate.py) with the same objective. With no champion yet, the first version becomes it.
Each version carries its figures as tags (bits_per_byte, eval_set, objective); the decision and both
figures are logged on the candidate's run (tags `registry.*`, metrics `registry/*`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import mlflow.pyfunc
import pandas as pd

from tokenmill.locations import without_credentials
from tokenmill.errors import UserError
from training import tracking as mlf
from training.config import TrackingConfig

CHAMPION = "champion"
ARTIFACT_PATH = "model"  # the pyfunc's name inside the run
PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the pyfunc carries training/ and tokenmill/ (its imports)
MODEL_CODE = Path(__file__).with_name("pyfunc_model.py")  # builds the pyfunc from code, not from a pickle


def gate_metric(objective: str, gate: str = "bits_per_byte") -> str:
    """The metrics.json key the gate compares (`tracking.gate`; bits per byte by default)."""
    if gate != "bits_per_byte":
        return gate  # task/<task>/<metric>: a harness figure (training/harness.py)
    return "bits_per_byte" if objective == "causal" else "masked_bits_per_byte"


LOWER_IS_BETTER = ("perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte")


def lower_is_better(key: str) -> bool:
    """Bits per byte and perplexities: lower wins; a harness task's accuracy-like figure: higher wins."""
    return not key.startswith("task/") or key.rsplit("/", 1)[-1] in LOWER_IS_BETTER


class TextGenerator(mlflow.pyfunc.PythonModel):
    """The pyfunc's model: `predict(["a prompt", ...])` -> continuations, one string per prompt.
    Params (all optional): max_new_tokens, temperature (0: greedy), top_k, top_p, seed."""

    def load_context(self, context) -> None:
        import torch

        from training.model import GPT
        from training.tokenizer import load_tokenizer, special_ids

        record = torch.load(context.artifacts["model"], map_location="cpu", weights_only=True)
        self.model = GPT.from_record(record, "model.pt")
        self.tokenizer = load_tokenizer(Path(context.artifacts["tokenizer"]))
        self.ids = special_ids(self.tokenizer)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> list[str]:
        """model_input: what MLflow hands a pyfunc with this signature, a one-column DataFrame of prompts
        (a list or a string also do). The hint tells MLflow not to infer a schema from it (the signature is
        explicit, see _signature) and keeps its "Add type hints" warning out of stage logs."""
        import torch

        params = {**DEFAULT_PARAMS, **(params or {})}
        prompts = _prompts(model_input)
        outputs = []
        for prompt in prompts:
            # each prompt samples from its own generator, seeded alike: a prompt's continuation depends on
            # the prompt and the seed, never on the other prompts of the batch or on its place in it
            generator = torch.Generator().manual_seed(int(params["seed"]))
            ids = ([self.ids["bos"]] if self.ids["bos"] is not None else [])
            ids = (ids + self.tokenizer.encode(prompt, add_special_tokens=False).ids)[-self.model.config.block_size:]
            top_k = int(params["top_k"]) or None
            top_p = float(params["top_p"]) if 0 < float(params["top_p"]) < 1 else None
            row = self.model.generate(torch.tensor([ids]), int(params["max_new_tokens"]),
                                      float(params["temperature"]), top_k, generator, top_p=top_p,
                                      stop=self.ids["eos"])[0, len(ids):].tolist()
            if self.ids["eos"] in row:
                row = row[: row.index(self.ids["eos"])]
            outputs.append(self.tokenizer.decode(row))
        return outputs


DEFAULT_PARAMS = {"max_new_tokens": 64, "temperature": 0.8, "top_k": 50, "top_p": 0.95, "seed": 1337}


def _prompts(model_input) -> list[str]:
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, pd.DataFrame):
        column = "prompt" if "prompt" in model_input.columns else model_input.columns[0]
        return [str(v) for v in model_input[column]]
    return [str(v) for v in model_input]


def _signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string")]),  # a list of prompt strings (or one column of them)
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec(name, "long" if isinstance(v, int) else "double", v)
                            for name, v in DEFAULT_PARAMS.items()]),
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", "torch", "tokenizers", "numpy", "pandas", "PyYAML")]


def log_pyfunc(tracking: TrackingConfig, run_id: str, model_dir: Path) -> str:
    """Log model_dir's model.pt + tokenizer.json as a text-generating pyfunc on `run_id`; its model URI."""
    import mlflow

    model_dir = Path(model_dir)
    for name in ("model.pt", "tokenizer.json"):
        if not (model_dir / name).is_file():
            raise UserError(f"{model_dir / name}: not found (run the train stage first)")
    mlf.ensure_experiment(tracking)
    mlflow.set_tracking_uri(mlf.store_uri(tracking.tracking_uri))
    quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}  # no bar redraws in stage logs (issue 9)
    with tempfile.TemporaryDirectory(prefix="tokenmill-code-") as tmp, _environment(quiet):
        code = [shutil.copytree(PACKAGE_ROOT / package, Path(tmp) / package,
                                ignore=shutil.ignore_patterns("__pycache__", "finetune"))
                for package in ("training", "tokenmill")]
        with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
            # the signature is explicit; an input example would only make MLflow load and run the model
            # here to check it, and its advice to add one (with raw ANSI colour codes) is not for our users
            warnings.filterwarnings("ignore", message=r"(\x1b\[[0-9;]*m)?An input example was not provided",
                                    category=UserWarning)
            info = mlflow.pyfunc.log_model(
                name=ARTIFACT_PATH, python_model=str(MODEL_CODE),
                artifacts={"model": str(model_dir / "model.pt"), "tokenizer": str(model_dir / "tokenizer.json")},
                code_paths=[str(p) for p in code], signature=_signature(), pip_requirements=_requirements())
    return info.model_uri


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def register(tracking: TrackingConfig, run_id: str, model_dir: Path, metrics: dict, objective: str,
             eval_set: str) -> dict:
    """Log the pyfunc, register a new version and apply the promotion gate. Returns the decision."""
    client = mlf.client(tracking)
    name = tracking.registered_model
    key = gate_metric(objective, tracking.gate)
    if key not in metrics or not math.isfinite(metrics[key]):
        raise UserError(f"no finite {key} in the evaluation metrics: evaluate the model before registering it")
    candidate = float(metrics[key])
    model_uri = log_pyfunc(tracking, run_id, model_dir)
    try:
        client.get_registered_model(name)
    except Exception:  # RESOURCE_DOES_NOT_EXIST
        client.create_registered_model(name, description="tokenmill GPT: prompt in, generated text out")
    version = client.create_model_version(name, model_uri, run_id=run_id,
                                          tags={"bits_per_byte": repr(float(metrics.get(gate_metric(objective),
                                                                                        candidate))),
                                                "value": repr(candidate), "metric": key,
                                                "eval_set": eval_set, "objective": objective}).version
    champion = champion_version(tracking)
    decision = _decide(champion, candidate, key, eval_set, objective)
    if decision["promoted"]:
        client.set_registered_model_alias(name, CHAMPION, version)
    decision.update(model=name, version=int(version), candidate=candidate, model_uri=f"models:/{name}/{version}")
    client.set_tag(run_id, "registry.decision", decision["reason"])
    client.set_tag(run_id, "registry.version", str(version))
    client.log_metric(run_id, "registry/candidate_" + key, candidate)
    if decision.get("champion") is not None:
        client.log_metric(run_id, "registry/champion_" + key, decision["champion"])
    print(f"registry: {name} version {version}: {decision['reason']}", file=sys.stderr)
    return decision


def _decide(champion, candidate: float, key: str, eval_set: str, objective: str) -> dict:
    if champion is None:
        return {"promoted": True, "champion": None, "champion_version": None,
                "reason": f"promoted: first version ({key} {candidate:.4f})"}
    tags = champion.tags
    figure = tags.get("value", tags.get("bits_per_byte"))  # versions before tracking.gate: only bits_per_byte
    figure = float(figure) if figure is not None else None
    base = {"champion": figure, "champion_version": int(champion.version)}
    if tags.get("eval_set") != eval_set or tags.get("objective") != objective or figure is None \
            or tags.get("metric", key) != key:
        return {**base, "promoted": False,
                "reason": f"kept champion v{champion.version}: not comparable (its {tags.get('metric')} on "
                          f"{tags.get('eval_set')}/{tags.get('objective')}, this one {key} on {eval_set}/{objective})"}
    if (candidate < figure) if lower_is_better(key) else (candidate > figure):
        return {**base, "promoted": True,
                "reason": f"promoted: {key} {candidate:.4f} beats champion v{champion.version}'s {figure:.4f}"}
    return {**base, "promoted": False,
            "reason": f"kept champion v{champion.version}: {key} {candidate:.4f} does not beat its {figure:.4f}"}


def champion_version(tracking: TrackingConfig):
    """The ModelVersion holding the champion alias, or None."""
    try:
        return mlf.client(tracking).get_model_version_by_alias(tracking.registered_model, CHAMPION)
    except Exception:  # no such model or alias
        return None


def list_models(tracking: TrackingConfig) -> list[dict]:
    """Every version of the registered model, newest first, with its figures and whether it is champion."""
    client = mlf.client(tracking)
    name = tracking.registered_model
    versions = client.search_model_versions(f"name='{name}'")
    champion = champion_version(tracking)
    rows = []
    for v in sorted(versions, key=lambda v: int(v.version), reverse=True):
        rows.append({"version": int(v.version), "champion": champion is not None and v.version == champion.version,
                     "metric": v.tags.get("metric"), "bits_per_byte": _float(v.tags.get("bits_per_byte")),
                     "eval_set": v.tags.get("eval_set"), "objective": v.tags.get("objective"), "run_id": v.run_id,
                     "created": v.creation_timestamp})
    return rows


def format_models(name: str, rows: list[dict]) -> str:
    if not rows:
        return f"no versions of {name} yet (evaluate a trained model with tracking.register: true)"
    lines = [f"{name}", f"  {'version':>7}  {'bits/byte':>9}  {'metric':<22} {'eval set':<16}  run"]
    for r in rows:
        figure = f"{r['bits_per_byte']:.4f}" if r["bits_per_byte"] is not None else "-"
        mark = "  <- champion" if r["champion"] else ""
        lines.append(f"  {r['version']:>7}  {figure:>9}  {r['metric'] or '-':<22} {r['eval_set'] or '-':<16}  "
                     f"{r['run_id']}{mark}")
    return "\n".join(lines)


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def model_uri_run_id(tracking: TrackingConfig, uri: str) -> str:
    """The run id behind models:/<name>/<version> or models:/<name>@<alias>."""
    client = mlf.client(tracking)
    rest = uri[len("models:/"):]
    try:
        if "@" in rest:
            name, alias = rest.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
        else:
            name, number = rest.rsplit("/", 1)
            version = client.get_model_version(name, number)
    except Exception:
        raise UserError(f"{uri}: no such registered model version in "
                        f"{without_credentials(tracking.tracking_uri)}") from None
    return version.run_id
