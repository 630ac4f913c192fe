"""Evaluate stage: validation loss, perplexity and bits per byte of a trained model, overall, per language
and per source; a fixed-seed sample gallery.

What is measured, exactly:
  - The evaluation set is whole validation documents (BOS + text + EOS each), taken in a fixed
    pseudo-random order of the split's documents until `max_tokens` is reached, then put back in file
    order: every language keeps its share however the corpus is ordered. Its identity `eval_set` is the
    SHA-256 of the documents' text, so runs with other tokenizers or corpora are compared only on the
    same text (the promotion gate relies on it). When the validation split is a frozen evaluation set
    (training/evalset.py) and all of it fits in `max_tokens`, `eval_set` is that set's digest: the same
    for every corpus version and tokenizer.
  - Causal models: sliding windows of block_size tokens every `stride` tokens (default block_size // 2);
    each window scores only the targets no earlier window scored, so every target is scored once, with
    at least block_size - stride tokens of context (except at the very start). Context runs across
    document boundaries, as in training.
  - Masked-LM models: non-overlapping windows; `mask_rate` of the ordinary tokens masked (80/10/10)
    with a fixed seed; loss and bits per byte over the masked positions only (keys `masked_*`).
  - Bits per byte: summed nats over the scored targets / (ln 2 x the UTF-8 bytes those targets stand
    for). BOS and EOS targets count their nats (predicting where a document ends is part of the task)
    and stand for 0 bytes. A target counts toward the document it belongs to (the BOS opening a document
    belongs to that document), hence to that document's language and source.
  - Keys in metrics.json: `val_loss`, `perplexity`, `bits_per_byte`, and each of them `/lang=<code>` and
    `/source=<name>`; MLflow names them `eval/<key>` with ':' for '=' (MLflow refuses '=').

`evaluate` takes a model directory, a Lightning checkpoint file, an MLflow run id (or runs:/<id>) or a
registered model (models:/<name>/<version> or models:/<name>@<alias>), and logs to the model's run.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tokenmill.locations import without_credentials
from tokenmill.errors import UserError
from tokenmill.progress import progress
from tokenmill.stage import atomic_write_text, write_json
from training import tracking as mlf
from training.checkpoints import load_checkpoint
from training.config import EvalConfig, TrackingConfig
from training.model import GPT
from training.objectives import IGNORE_INDEX, mask_tokens
from training.evalset import text_digest
from training.tokenizer import (load_tokenizer, read_documents_index, read_meta, read_tokens, special_ids,
                                token_byte_lengths)

GROUPS = ("lang", "source")
RUN_ID_LENGTH = 32


def bits_per_byte(total_nats: float, total_bytes: int) -> float:
    return total_nats / (math.log(2) * total_bytes) if total_bytes else float("nan")


def unigram_log_probs(train_tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """log p(token) from train.bin counts (add-one smoothed): the baseline a model must beat."""
    counts = np.bincount(train_tokens, minlength=vocab_size).astype(np.float64) + 1.0
    return np.log(counts / counts.sum())


def pick_device(requested: str = "auto") -> torch.device:
    """The accelerator training would use: cuda if available, else mps, else cpu (or what was asked)."""
    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def causal_windows(n_tokens: int, block_size: int, stride: int | None = None) -> list[tuple[int, int, int]]:
    """(begin, length, first scored offset) of each window over a stream of `n_tokens` tokens: window
    tokens [begin, begin + length) predict targets [begin + 1, begin + length + 1); only targets from the
    offset on are scored. Every target 1..n_tokens-1 is scored exactly once."""
    targets = n_tokens - 1
    if targets < 1:
        return []
    if targets <= block_size:
        return [(0, targets, 0)]
    stride = min(stride or max(1, block_size // 2), block_size)
    spans, scored_until, begin = [], 0, 0
    while True:
        spans.append((begin, block_size, scored_until - begin))
        scored_until = begin + block_size
        if scored_until >= targets:
            return spans
        begin = min(begin + stride, targets - block_size)


@torch.no_grad()
def loss_sums(model, tokens: np.ndarray, byte_lengths: np.ndarray, block_size: int, batch_size: int,
              unigram: np.ndarray, doc_of_token: np.ndarray | None = None, stride: int | None = None,
              device: torch.device | str = "cpu", masking: dict | None = None) -> dict:
    """Summed nats (model and unigram baseline), scored targets and their bytes over `tokens`, in total
    and per document (`doc_of_token[i]`: the document of token i). Causal windows by default; with
    `masking` ({"mask_id", "vocab_size", "rate", "seed"}) non-overlapping windows scored on masked positions."""
    n = len(tokens)
    doc_of_token = np.zeros(n, dtype=np.int64) if doc_of_token is None else np.asarray(doc_of_token)
    per_doc = np.zeros((int(doc_of_token.max(initial=0)) + 1, 4), dtype=np.float64)  # nats, unigram, tokens, bytes
    if masking is None:
        spans = causal_windows(n, block_size, stride)
    else:
        spans = [(b, min(block_size, n - b), 0) for b in range(0, n, block_size)]
        generator = torch.Generator().manual_seed(masking["seed"])
    by_length: dict[int, list[tuple[int, int]]] = {}
    for begin, length, first in spans:
        by_length.setdefault(length, []).append((begin, first))
    batches = [(length, group[i:i + batch_size]) for length, group in by_length.items()
               for i in range(0, len(group), batch_size)]
    for length, group in progress(batches, desc="evaluate", unit="batch"):
        window = torch.from_numpy(np.stack([tokens[b:b + length + 1] for b, _ in group]).astype(np.int64)) \
            if masking is None else torch.from_numpy(np.stack([tokens[b:b + length] for b, _ in group]).astype(np.int64))
        offsets = torch.arange(length)
        if masking is None:
            inputs, targets = window[:, :-1], window[:, 1:]
            positions = torch.tensor([b + 1 for b, _ in group])[:, None] + offsets
            scored = offsets[None, :] >= torch.tensor([f for _, f in group])[:, None]
        else:
            inputs, targets = mask_tokens(window, masking["mask_id"], masking["vocab_size"], masking["rate"], generator)
            positions = torch.tensor([b for b, _ in group])[:, None] + offsets
            scored = targets != IGNORE_INDEX
        logits, _ = model(inputs.to(device))
        nats = F.cross_entropy(logits.flatten(0, 1).float(), targets.to(device).flatten(), reduction="none",
                               ignore_index=IGNORE_INDEX).view(targets.shape).cpu().double()  # MPS has no float64
        target_ids = targets[scored].numpy()
        docs = doc_of_token[positions[scored].numpy()]
        for column, values in enumerate((nats[scored].numpy(), -unigram[target_ids], np.ones(len(target_ids)),
                                         byte_lengths[target_ids])):
            per_doc[:, column] += np.bincount(docs, weights=values, minlength=len(per_doc))
    total = per_doc.sum(axis=0)
    return {"nats": float(total[0]), "unigram_nats": float(total[1]), "tokens": int(total[2]),
            "bytes": int(total[3]), "per_doc": per_doc}


@dataclass
class EvalSet:
    """Validation documents to evaluate on: their tokens end to end and what each document is."""

    tokens: np.ndarray  # the documents' tokens, concatenated in file order
    doc_of_token: np.ndarray  # index into the documents below of every token
    lang: list[str]  # per document
    source: list[str]  # per document
    digest: str  # SHA-256 of the documents' text: the identity of the evaluation set


def evaluation_set(tokens_dir: Path, meta: dict, max_tokens: int, tokenizer) -> EvalSet:
    """Whole validation documents up to `max_tokens` (see the module docstring)."""
    val = read_tokens(tokens_dir, "val", meta)
    index = read_documents_index(tokens_dir, "val", meta)
    if index is None:  # token files from before per-document ranges: the first max_tokens tokens, one group
        stream = np.asarray(val[: max_tokens + 1])
        text = tokenizer.decode(stream.tolist())
        return EvalSet(stream, np.zeros(len(stream), dtype=np.int64), ["unknown"], ["unknown"], _digest([text]))
    ranges = index["ranges"]
    order = np.random.default_rng(0).permutation(len(ranges))
    lengths = ranges[order, 1] - ranges[order, 0]
    chosen = order[: max(1, int(np.searchsorted(np.cumsum(lengths), max_tokens, side="right")))]
    chosen.sort()
    pieces = [np.asarray(val[a:b]) for a, b in ranges[chosen]]
    stream = np.concatenate(pieces)[: max(max_tokens, 2)]  # a first document longer than the budget is cut
    doc_of_token = np.repeat(np.arange(len(chosen)), [len(p) for p in pieces])[: len(stream)]
    texts = tokenizer.decode_batch([p.tolist() for p in pieces])
    cut = [f"cut to {len(stream)} tokens"] if len(stream) < sum(len(p) for p in pieces) else []
    frozen = meta.get("eval_set")
    if frozen and not cut and len(chosen) == len(ranges):
        digest = frozen["digest"]  # the whole evaluation set: its own identity, whatever the tokenizer
    else:
        digest = _digest(texts + cut)
        if frozen:
            print(f"evaluate: evaluate.max_tokens={max_tokens} scores {len(chosen)} of the {len(ranges)} documents "
                  f"of evaluation set {frozen['digest']}; runs compare only with the same cut (raise it to "
                  f"score the whole set)", file=sys.stderr)
    return EvalSet(stream, doc_of_token, [str(v) for v in index["lang"][chosen]],
                   [str(v) for v in index["source"][chosen]], digest)


_digest = text_digest  # one definition: training/evalset.py's


def group_metrics(sums: dict, eval_set: EvalSet, prefix: str = "") -> dict:
    """loss, perplexity and bits per byte overall and per language and source: the metrics.json keys."""
    metrics = _figures(sums["nats"], sums["tokens"], sums["bytes"], prefix)
    for group in GROUPS:
        names = getattr(eval_set, group)
        for name in sorted(set(names)):
            rows = sums["per_doc"][[i for i, n in enumerate(names) if n == name]]
            nats, count, nbytes = rows[:, 0].sum(), int(rows[:, 2].sum()), int(rows[:, 3].sum())
            if count:
                metrics.update({f"{k}/{group}={name}": v for k, v in _figures(nats, count, nbytes, prefix).items()})
    return metrics


def _figures(nats: float, count: int, nbytes: int, prefix: str) -> dict:
    loss = nats / count if count else float("nan")
    return {f"{prefix}val_loss": loss, f"{prefix}perplexity": math.exp(min(loss, 700)),
            f"{prefix}bits_per_byte": bits_per_byte(nats, nbytes)}


def generate_samples(model, tokenizer, config: EvalConfig, eot_id: int | None, device: torch.device | str = "cpu",
                     bos_id: int | None = None) -> list[dict]:
    """`config.samples` continuations of each prompt (BOS + prompt), cut at the first end-of-text; the
    same seed gives the same gallery on every device."""
    if not getattr(model, "causal", True) or not config.samples:
        return [{"prompt": p, "samples": []} for p in config.prompts]
    generator = torch.Generator().manual_seed(config.seed)
    samples = []
    for prompt in config.prompts:
        ids = ([bos_id] if bos_id is not None else []) + tokenizer.encode(prompt, add_special_tokens=False).ids
        ids = (ids or [eot_id or 0])[-model.config.block_size:]
        idx = torch.tensor([ids] * config.samples, dtype=torch.long, device=device)
        outputs = model.generate(idx, config.max_new_tokens, config.temperature, config.top_k, generator,
                                 top_p=config.top_p, stop=eot_id).tolist()
        samples.append({"prompt": prompt,
                        "samples": [tokenizer.decode(_until(row[len(ids):], eot_id)) for row in outputs]})
    return samples


def _until(ids: list[int], stop: int | None) -> list[int]:
    return ids[: ids.index(stop)] if stop in ids else ids


def gallery_markdown(samples: list[dict], config: EvalConfig) -> str:
    lines = [f"# Samples (seed {config.seed}, temperature {config.temperature}, top-k {config.top_k}, "
             f"top-p {config.top_p}, {config.max_new_tokens} new tokens)", ""]
    for entry in samples:
        lines.append(f"## {entry['prompt']}")
        lines += [f"{i + 1}. {entry['prompt']}**{s}**".replace("\n", " ") for i, s in enumerate(entry["samples"])]
        lines.append("")
    return "\n".join(lines)


@dataclass
class LoadedModel:
    model: GPT
    tokenizer_file: Path | None  # the tokenizer the model was trained with, when known
    run_id: str | None  # the MLflow run to log to, when known
    source: str  # what was loaded, for messages
    model_dir: Path | None = None  # a model directory (model.pt + tokenizer.json): what the registry logs


def load_for_evaluation(source: str | Path, tracking: TrackingConfig, device: torch.device | str,
                        workdir: Path) -> LoadedModel:
    """A model from a model directory, a Lightning checkpoint, an MLflow run id or a registered model."""
    text = str(source)
    if text.startswith("models:/"):
        from training.registry import model_uri_run_id

        return _from_run(model_uri_run_id(tracking, text), tracking, device, workdir, text)
    if text.startswith("runs:/") or (len(text) == RUN_ID_LENGTH and not Path(text).exists()
                                     and all(c in "0123456789abcdef" for c in text)):
        return _from_run(text.removeprefix("runs:/").strip("/").split("/")[0], tracking, device, workdir, text)
    path = Path(text)
    if path.is_file() and path.suffix == ".ckpt":
        return LoadedModel(_from_checkpoint(path, device), None, _checkpoint_run_id(path), text)
    if path.is_dir():
        record = _load_record(path / "model.pt", device)
        run_file = path / "run.json"
        run_id = json.loads(run_file.read_text(encoding="utf-8"))["run_id"] if run_file.is_file() else None
        tokenizer_file = path / "tokenizer.json"
        return LoadedModel(GPT.from_record(record, str(path / "model.pt")).to(device),
                           tokenizer_file if tokenizer_file.is_file() else None, run_id, text, path)
    raise UserError(f"{text}: not a model directory, a .ckpt checkpoint, an MLflow run id or models:/ URI")


def _load_record(path: Path, device) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: not found (run the train stage first)")
    try:
        return load_checkpoint(path, map_location=device)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable model file ({str(exc).splitlines()[0][:160]})") from None


def _from_checkpoint(path: Path, device) -> GPT:
    try:
        checkpoint = load_checkpoint(path, map_location=device)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0][:160]})") from None
    identity = (checkpoint.get("tokenmill") or {}).get("identity")
    if not identity:
        raise UserError(f"{path}: checkpoint without a tokenmill run identity (written by an older tokenmill)")
    state = {k[len("model."):]: v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    record = {"model_config": identity["model"], "vocab_size": identity["tokenizer"]["vocab_size"],
              "state_dict": state, "objective": identity.get("train", {}).get("objective", "causal")}
    return GPT.from_record(record, str(path)).to(device)


def _checkpoint_run_id(path: Path) -> str | None:
    try:
        return (load_checkpoint(path, mmap=True).get("tokenmill") or {}).get(
            "mlflow_run_id")
    except Exception:
        return None


def _from_run(run_id: str, tracking: TrackingConfig, device, workdir: Path, source: str) -> LoadedModel:
    if mlf.existing_run(tracking, run_id) is None:
        raise UserError(f"{source}: no such MLflow run in {without_credentials(tracking.tracking_uri)}")
    client = mlf.client(tracking)
    names = {a.path for a in client.list_artifacts(run_id)}
    if "model.pt" not in names:
        raise UserError(f"{source}: MLflow run {run_id} has no model.pt artifact (did its training finish?)")
    for name in ("model.pt", "tokenizer.json"):
        if name in names:
            client.download_artifacts(run_id, name, str(workdir))
    record = _load_record(workdir / "model.pt", device)
    tokenizer_file = workdir / "tokenizer.json"
    return LoadedModel(GPT.from_record(record, f"{source}: model.pt").to(device),
                       tokenizer_file if tokenizer_file.is_file() else None, run_id, source)


def evaluate(model_dir: Path | str, tokens: Path, out: Path, config: EvalConfig, tracking: TrackingConfig) -> dict:
    """Write `out` (metrics.json), evaluation.json and samples.json/samples.md beside it; log them to the
    model's MLflow run. `model_dir` may be anything `load_for_evaluation` takes."""
    tokens, out = Path(tokens), Path(out)
    torch.manual_seed(config.seed)
    device = pick_device(config.device)
    meta = read_meta(tokens)
    with tempfile.TemporaryDirectory(prefix="tokenmill-eval-") as workdir:
        loaded = load_for_evaluation(model_dir, tracking, device, Path(workdir))
        tokenizer_file = tokens / "tokenizer.json"
        if loaded.tokenizer_file is not None and loaded.tokenizer_file.read_bytes() != tokenizer_file.read_bytes():
            raise UserError(f"{loaded.source}: trained with another tokenizer than {tokenizer_file} "
                            f"(evaluate it on the tokens it was trained with)")
    model, tokenizer = loaded.model, load_tokenizer(tokenizer_file)
    if meta["vocab_size"] != model.vocab_size:
        raise UserError(f"{tokens}: vocab size {meta['vocab_size']} differs from the model's {model.vocab_size}")
    eval_set = evaluation_set(tokens, meta, config.max_tokens, tokenizer)
    if len(eval_set.tokens) < 2:
        raise UserError(f"{tokens / 'val.bin'}: too few tokens to evaluate")
    block_size = model.config.block_size
    unigram = unigram_log_probs(read_tokens(tokens, "train", meta), meta["vocab_size"])
    causal = getattr(model, "causal", True)
    ids = special_ids(tokenizer)
    masking = None
    if not causal:
        if ids["mask"] is None:
            raise UserError(f"{tokens}: the tokenizer has no mask token (re-run tokenize) for a masked-LM model")
        masking = {"mask_id": ids["mask"], "vocab_size": meta["vocab_size"], "rate": config.mask_rate,
                   "seed": config.seed}
    stride = min(config.stride or max(1, block_size // 2), block_size)
    sums = loss_sums(model, eval_set.tokens, token_byte_lengths(tokenizer), min(block_size, len(eval_set.tokens) - 1),
                     config.batch_size, unigram, eval_set.doc_of_token, stride, device, masking)
    prefix = "" if causal else "masked_"
    metrics = {**group_metrics(sums, eval_set, prefix),
               f"{prefix}unigram_val_loss": sums["unigram_nats"] / sums["tokens"],
               "tokens": sums["tokens"], "bytes": sums["bytes"], "documents": len(eval_set.lang)}
    description = {
        "objective": "causal" if causal else "masked",
        "eval_set": eval_set.digest,
        "windows": (f"sliding: {block_size}-token windows every {stride} tokens, each scoring the targets no "
                    f"earlier window scored" if causal else
                    f"non-overlapping {block_size}-token windows, {config.mask_rate:.0%} of ordinary tokens masked "
                    f"(seed {config.seed}), scored on masked positions only"),
        "end_of_text": "BOS/EOS targets count their loss and 0 bytes",
        "block_size": block_size, "stride": stride if causal else block_size,
        "documents": len(eval_set.lang), "tokens_scored": sums["tokens"], "bytes_scored": sums["bytes"],
        "device": str(device), "model": loaded.source,
    }
    samples = generate_samples(model, tokenizer, config, ids["eos"], device, ids["bos"])
    write_json(out, metrics)
    write_json(out.with_name("evaluation.json"), description)
    write_json(out.with_name("samples.json"), samples)
    atomic_write_text(out.with_name("samples.md"), gallery_markdown(samples, config))
    logged = _log_to_run(loaded.run_id, tracking, metrics, description, out)
    decision = None
    if logged and tracking.register and loaded.model_dir is not None and not causal:
        print("registry: a masked-LM model does not generate text; not registered", file=sys.stderr)
    elif logged and tracking.register and loaded.model_dir is not None:
        from training.registry import register

        gate_set = eval_set.digest
        if tracking.gate != "bits_per_byte":  # the gate's harness task, measured now on this model (training/harness.py)
            from training.harness import gate_figures

            figures, gate_set = gate_figures(model, tokenizer, tracking, meta, out, config, loaded.run_id)
            metrics = {**metrics, **figures}
        decision = register(tracking, loaded.run_id, loaded.model_dir, metrics, description["objective"], gate_set)
        write_json(out.with_name("registry.json"), decision)
    return {**metrics, "eval_set": eval_set.digest, "device": str(device), "run_id": loaded.run_id,
            "registry": decision, "samples": samples}


def mlflow_metric_name(key: str) -> str:
    """metrics.json key -> MLflow metric name (MLflow refuses '=')."""
    return "eval/" + key.replace("=", ":")


def _log_to_run(run_id: str | None, tracking: TrackingConfig, metrics: dict, description: dict, out: Path) -> bool:
    """Log the evaluation on the model's run; False when there is no run to log to."""
    if not tracking.enabled or run_id is None:
        return False
    if mlf.existing_run(tracking, run_id) is None:
        print(f"warning: MLflow run {run_id} not in {without_credentials(tracking.tracking_uri)}; evaluation not logged", file=sys.stderr)
        return False
    client = mlf.client(tracking)
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(mlflow_metric_name(k), float(v), now, 0) for k, v in metrics.items()
                                      if isinstance(v, (int, float)) and math.isfinite(v)],
                     tags=[RunTag("eval.set", description["eval_set"]), RunTag("eval.objective", description["objective"]),
                           *(RunTag(k, v) for k, v in mlf.prefect_tags().items())])  # evaluated inside a flow run
    for name in (out.name, "evaluation.json", "samples.json", "samples.md"):
        client.log_artifact(run_id, str(out.with_name(name)), "eval")
    return True
