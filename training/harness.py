"""Standard evaluation: EleutherAI's lm-evaluation-harness on tokenmill's own model, no conversion.

`TokenmillLM` is the harness's model interface (`lm_eval.api.model.TemplateLM`, an `LM`) over a GPT and its
tokenizer. It encodes text exactly as the exported Hugging Face tokenizer does (training/export.py): a text
is BOS + its tokens, so the harness's own `hf` model on an exported directory and this adapter score the
same tokens (tests/training/test_harness.py checks the log-likelihoods agree):
  - loglikelihood: context and continuation split as every harness model splits them (TemplateLM), the
    continuation's log-probability summed; requests batched, longest first, right-padded (the model is
    causal, so padding after a sequence changes nothing before it); inputs longer than block_size keep
    their last block_size tokens, as the `hf` model does;
  - loglikelihood_rolling: a document's log-likelihood given BOS, in block_size windows (the harness's
    rolling windows: every token scored once, with as much context as fits);
  - generate_until: greedy (or sampled, when a task asks) continuations through the model's KV cache,
    prompts of any length batched together (left-padded, training/generate.py's BatchDecoder), each row
    leaving the batch at EOS, its token budget or one of the task's stop strings (cut before it).

`training.task_eval.evaluate_tasks` runs tasks by name: the harness's own (downloaded by `datasets` when the machine can
reach the Hub), tasks under `--include-path`, and tokenmill's local tasks (training/tasks.py, built from the
frozen evaluation set, named tokenmill_*; `tokenmill` names all of them). Per-task figures become
metrics.json keys `task/<task>/<metric>` (acc, acc_norm, perplexity and their `_stderr`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from lm_eval import utils as lm_utils
from lm_eval.api.model import TemplateLM

from training.model import GPT

if TYPE_CHECKING:
    from training.generate import SamplingParams

LOCAL_GROUP = "tokenmill"  # names every local task
BOOTSTRAP_ITERS = 1000  # stderr of non-mean metrics (perplexity); the harness's 100000 takes minutes on a CPU


class TokenmillLM(TemplateLM):
    """lm-evaluation-harness model over a tokenmill GPT (eval mode) and its tokenizers.Tokenizer."""

    backend = "causal"

    def __init__(self, model: GPT, tokenizer, batch_size: int = 16, device: str | torch.device = "cpu"):
        super().__init__()
        from training.tokenizer import special_ids

        if not getattr(model, "causal", True):
            raise ValueError("a masked-LM model has no left-to-right log-likelihood for the harness")
        self.model, self.hf_tokenizer = model.eval().to(device), tokenizer
        self.ids = special_ids(tokenizer)
        self.batch_size, self._device = int(batch_size), torch.device(device)
        self.max_length = model.config.block_size
        self.bos_text = tokenizer.id_to_token(self.ids["bos"]) if self.ids["bos"] is not None else None

    @property
    def eot_token_id(self) -> int:
        return self.ids["eos"]

    @property
    def prefix_token_id(self) -> int:
        """What an empty context is: BOS (every training document starts with it), as the `hf` model's."""
        return self.ids["bos"] if self.ids["bos"] is not None else self.ids["eos"]

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        """BOS + text by default (a prompt as tokenmill feeds it); text only with add_special_tokens=False."""
        text = self.hf_tokenizer.encode(string, add_special_tokens=False).ids
        with_bos = add_special_tokens is not False and self.ids["bos"] is not None
        if add_special_tokens is None and self.bos_text and string.startswith(self.bos_text):
            with_bos = False  # the string carries its own BOS (the harness's convention)
        return [self.ids["bos"]] + text if with_bos else text

    def tok_decode(self, tokens: list[int]) -> str:
        return self.hf_tokenizer.decode(tokens, skip_special_tokens=True)

    @torch.no_grad()
    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        # the harness's "Tokenizing inputs" bar only in a terminal, not in a piped log
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm or not sys.stderr.isatty())

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), whether greedy decoding gives the continuation) per request."""
        rows = []
        for _, context, continuation in requests:
            whole = (context + continuation)[-(self.max_length + 1):]
            rows.append((whole[:-1], continuation))
        results: list[tuple[float, bool] | None] = [None] * len(rows)
        for i, (_, context, continuation) in enumerate(requests):
            if len(continuation) > self.max_length:  # longer than a window (the hf model refuses these)
                results[i] = self._long_continuation(context, continuation)
        order = sorted((i for i in range(len(rows)) if results[i] is None), key=lambda i: -len(rows[i][0]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = len(rows[batch[0]][0])
            inputs = torch.full((len(batch), width), self.ids["pad"] or 0, dtype=torch.long)
            for r, i in enumerate(batch):
                inputs[r, :len(rows[i][0])] = torch.tensor(rows[i][0])
            logprobs = F.log_softmax(self.model(inputs.to(self._device))[0].float(), dim=-1).cpu()
            for r, i in enumerate(batch):
                given, continuation = rows[i]
                scored = logprobs[r, len(given) - len(continuation):len(given)]
                target = torch.tensor(continuation)
                results[i] = (float(scored.gather(1, target[:, None]).sum()),
                              bool((scored.argmax(dim=-1) == target).all()))
            self._cache_partials("loglikelihood", [requests[i][0] for i in batch], [results[i] for i in batch])
        return results

    def _long_continuation(self, context: list[int], continuation: list[int]) -> tuple[float, bool]:
        """A continuation longer than block_size, scored in sliding windows (training/evaluate.py's: every
        target once, each with at least half a window of context)."""
        from training.objectives import causal_windows

        tokens, total, greedy = context + continuation, 0.0, True
        for begin, length, first in causal_windows(len(tokens), self.max_length):
            window = torch.tensor([tokens[begin:begin + length + 1]], device=self._device)
            logprobs = F.log_softmax(self.model(window[:, :-1])[0][0].float(), dim=-1).cpu()
            for offset in range(max(first, len(context) - begin - 1), length):
                target = tokens[begin + offset + 1]
                total += float(logprobs[offset, target])
                greedy &= int(logprobs[offset].argmax()) == target
        return total, greedy

    def _cache_partials(self, kind: str, args: list, values: list) -> None:
        for a, v in zip(args, values):
            if a is not None:
                self.cache_hook.add_partial(kind, a, v)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """log p(text | BOS) of each request's text, in the harness's rolling block_size windows."""
        windows, owners = [], []
        for n, request in enumerate(requests):
            tokens = self.tok_encode(request.args[0], add_special_tokens=False)
            for window in lm_utils.get_rolling_token_windows(tokens, self.prefix_token_id, self.max_length, 1):
                windows.append((None, *lm_utils.make_disjoint_window(window)))
                owners.append(n)
        totals = [0.0] * len(requests)
        for owner, (logprob, _) in zip(owners, self._loglikelihood_tokens(windows)):
            totals[owner] += logprob
        for request, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", request.args, total)
        return totals

    @torch.no_grad()
    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Continuations of each context, cut before the first stop string (`until`; EOS always ends one):
        batch_size requests at a time, prompts of any length together (training/generate.py's BatchDecoder:
        left-padded, through the KV cache); a row leaves the batch once it stops."""
        results: list[str] = []
        for start in range(0, len(requests), self.batch_size):
            jobs = [self._generation_job(r.args) for r in requests[start:start + self.batch_size]]
            results += self._generate_batch(jobs)
        for request, text in zip(requests, results):
            self.cache_hook.add_partial("generate_until", request.args, text)
        return results

    def _generation_job(self, args) -> tuple[list[int], SamplingParams]:
        """(prompt ids, sampling) of a (context, gen_kwargs) request: greedy unless the task samples."""
        from training.generate import SamplingParams

        context, kwargs = args
        kwargs = dict(kwargs or {})
        until = kwargs.get("until") or []
        until = (until,) if isinstance(until, str) else tuple(u for u in until if u)
        max_new = max(1, min(int(kwargs.get("max_gen_toks", 256)), self.max_length - 1))
        temperature = float(kwargs.get("temperature", 0.0) or 0.0) if kwargs.get("do_sample") else 0.0
        ids = self.tok_encode(context)[-(self.max_length - max_new):] or [self.prefix_token_id]
        return ids, SamplingParams(max_new_tokens=max_new, temperature=temperature, seed=1234, stop=until)

    def _generate_batch(self, jobs: list) -> list[str]:
        from training.generate import BatchDecoder

        decoder = BatchDecoder(self.model, [ids for ids, _ in jobs], [p for _, p in jobs], self.ids["pad"] or 0)
        new: list[list[int]] = [[] for _ in jobs]
        while not decoder.done:
            for row, token in decoder.step().items():
                params = jobs[row][1]
                if token == self.ids["eos"]:
                    decoder.finish(row)
                    continue
                new[row].append(token)
                if len(new[row]) >= params.max_new_tokens or any(s in self.tok_decode(new[row]) for s in params.stop):
                    decoder.finish(row)
        return [_cut(self.tok_decode(tokens), list(params.stop)) for tokens, (_, params) in zip(new, jobs)]


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop and stop in text:
            text = text[:text.index(stop)]
    return text


def run_harness(lm, tasks: list[str], include_paths: list[Path], limit: int | float | None = None,
                seed: int = 1234) -> dict:
    """The harness's results dict (`simple_evaluate`) for `tasks` on `lm` (an LM object or "hf")."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    local_only = all(t.startswith(LOCAL_GROUP) for t in tasks) and len(include_paths) <= 1
    manager = TaskManager(include_path=[str(p) for p in include_paths] or None, include_defaults=not local_only)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        from tokenmill.errors import UserError

        raise UserError(f"--tasks: unknown task(s) {', '.join(unknown)} (local tasks: "
                        f"{', '.join(sorted(t for t in manager.all_tasks if t.startswith(LOCAL_GROUP)) or ['none'])})")
    with contextlib.redirect_stdout(io.StringIO()):  # the harness prints "bootstrapping for stddev" lines
        return simple_evaluate(model=lm, tasks=tasks, limit=limit, task_manager=manager,
                               bootstrap_iters=BOOTSTRAP_ITERS, log_samples=False, random_seed=seed,
                               numpy_random_seed=seed, torch_random_seed=seed, fewshot_random_seed=seed)


def task_metrics(results: dict) -> dict[str, float]:
    """metrics.json keys `task/<task>/<metric>` from a harness results dict (filter `none` dropped)."""
    metrics = {}
    for task, figures in sorted(results["results"].items()):
        for key, value in figures.items():
            metric, _, filter_name = key.partition(",")
            if metric == "alias" or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            name = metric if filter_name in ("", "none") else f"{metric}_{filter_name}"
            metrics[f"task/{task}/{name}"] = float(value) if math.isfinite(float(value)) else float("nan")
    return metrics


def offline_environment() -> None:
    """No Hub traffic for local tasks: datasets and transformers read only what is on disk."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tasks_directory(evalset: Path) -> Path:
    """Where the local tasks of an evaluation set are built: beside it (data/evalset -> data/evalset-tasks)."""
    evalset = Path(evalset)
    return evalset.with_name(evalset.name + "-tasks")


def resolve_tasks(names: list[str], evalset: Path | None) -> tuple[list[str], Path | None, str | None]:
    """(task names, local task directory, evaluation-set digest): `tokenmill` expands to every local task;
    local tasks are (re)built from the evaluation set when any is asked for."""
    from tokenmill.errors import UserError
    from training.local_tasks import build_tasks

    if not any(n.startswith(LOCAL_GROUP) for n in names):
        return names, None, None
    if evalset is None or not (Path(evalset) / "meta.json").is_file():
        raise UserError(f"--tasks {','.join(names)}: the tokenmill_* tasks are built from the evaluation set, and "
                        f"there is none at {evalset} (run `tokenmill evalset` first)")
    built = build_tasks(Path(evalset), tasks_directory(Path(evalset)))
    expanded = [t for n in names for t in (sorted(built["tasks"]) if n == LOCAL_GROUP else [n])]
    return list(dict.fromkeys(expanded)), Path(built["path"]), built["eval_set"]


def write_metrics(out: Path, metrics: dict, description: dict) -> None:
    """Merge `metrics` into metrics.json (earlier task/* figures of these tasks replaced) and write harness.json."""
    import json

    from tokenmill.stage import write_json

    from tokenmill.errors import UserError

    try:
        existing = json.loads(out.read_text(encoding="utf-8") or "{}") if out.exists() else {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        existing = None
    if not isinstance(existing, dict):
        raise UserError(f"{out}: exists and is not a metrics.json (a JSON object); not replacing it (choose another --out)")
    stale = tuple(f"task/{t}/" for t in description["tasks"])
    merged = {k: v for k, v in existing.items() if not k.startswith(stale)}
    write_json(out, {**merged, **metrics})
    write_json(out.with_name("harness.json"), description)


def log_task_metrics(tracking, run_id: str | None, metrics: dict, description: dict, out: Path) -> bool:
    import time

    from training import tracking as mlf
    from training.tracking import mlflow_metric_name

    if not tracking.enabled or run_id is None or mlf.existing_run(tracking, run_id) is None:
        return False
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    mlf.client(tracking).log_batch(
        run_id, metrics=[Metric(mlflow_metric_name(k), v, now, 0) for k, v in metrics.items() if math.isfinite(v)],
        tags=[RunTag("harness.tasks", ",".join(description["tasks"])), RunTag("harness.lm_eval", description["lm_eval"])])
    mlf.client(tracking).log_artifact(run_id, str(out.with_name("harness.json")), "eval")
    return True


def gate_figures(model: GPT, tokenizer, tracking, meta: dict, out: Path, config,
                 run_id: str | None = None) -> tuple[dict, str]:
    """(figures, identity) of the harness task `tracking.gate` names, on this model: merged into metrics.json
    and logged like `tokenmill evaluate --tasks`. The identity (task, its version, the evaluation set the local
    tasks were built from) is what the gate requires the champion's figure to share."""
    from training.model_spec import pick_device

    task = tracking.gate.split("/")[1]
    evalset = Path(meta["eval_set"]["path"]) if meta.get("eval_set") else None
    names, local_dir, digest = resolve_tasks([task], evalset)
    if local_dir is not None:
        offline_environment()
    results = run_harness(TokenmillLM(model, tokenizer, config.batch_size, pick_device(config.device)), names,
                          [local_dir] if local_dir else [], None)
    metrics = task_metrics(results)
    version = results.get("versions", {}).get(task)
    description = {"tasks": names, "limit": None, "lm_eval": __import__("lm_eval").__version__, "model": "gate",
                   "eval_set": digest, "versions": results.get("versions", {}),
                   "n_samples": results.get("n-samples", {}), "include_path": [] if local_dir is None else [str(local_dir)]}
    write_metrics(Path(out), metrics, description)
    log_task_metrics(tracking, run_id, metrics, description, Path(out))
    return metrics, f"{task}@{version}:{digest or 'hub'}"
