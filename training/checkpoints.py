"""Resumable checkpoints that never lose a run: atomic writes, every RNG state, no silent deletes.

A checkpoints directory holds
  step-00000600.ckpt   a Lightning checkpoint (model, optimiser, scheduler, loop counters) plus
                       "tokenmill": {"identity", "samples_seen", "rng", "cpu_threads", "history",
                       "mlflow_run_id"}
  step-00000400.ckpt   the one before: a torn newest checkpoint falls back to it
  *.ckpt.torn          a checkpoint that could not be read, renamed (kept) so it is not tried again
  aside/<time>-<what differs>/   checkpoints of another run (other model shape, tokenizer, data or
                       hyper-parameters), moved there with a reasons.txt instead of being deleted

`identity` says what a checkpoint must share with the current command to be resumed. Fields that do
not change the weights a step produces (max_steps, logging and checkpoint cadence, devices, strategy,
precision, compile) are left out: raising max_steps extends a run, moving it to more GPUs continues it.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from tokenmill.config import to_dict
from tokenmill.errors import UserError
from tokenmill.stage import exclusive_temp_file

CHECKPOINT_GLOB = "*.ckpt"
ASIDE = "aside"
# TrainConfig fields a checkpoint may be resumed under with another value.
RESUMABLE_FIELDS = ("max_steps", "log_every", "val_every", "val_batches", "checkpoint_every", "keep_checkpoints",
                    "num_workers", "progress_every_s", "accelerator", "devices", "strategy", "num_nodes",
                    "precision", "compile")
# Fields whose change makes the weights themselves incompatible (the rest only makes another run).
WEIGHT_SHAPE_FIELDS = ("model.n_layer", "model.n_head", "model.n_embd", "model.block_size", "model.bias",
                       "tokenizer.vocab_size", "tokenizer.sha256")


def checkpoint_path(directory: Path, step: int) -> Path:
    return Path(directory) / f"step-{step:08d}.ckpt"


def _step_of(path: Path) -> int:
    """Sort key: step-N.ckpt by N; anything else (e.g. an old last.ckpt) first."""
    stem = path.stem
    return int(stem[5:]) if stem.startswith("step-") and stem[5:].isdigit() else -1


# Classes a checkpoint may name besides what torch.load(weights_only=True) allows by default (tensors, dicts,
# lists, tuples, numbers, strings, None, OrderedDict, torch dtypes/devices/sizes). A tokenmill checkpoint
# (Lightning's state_dict, loops, callbacks, optimizer and scheduler states, "tokenmill": identity, RNG
# states as tensors) needs none: Lightning's hyper-parameters (an AttributeDict) are not saved, the
# modules call no save_hyperparameters(). Anything else a pickle asks for is refused, never imported.
CHECKPOINT_GLOBALS: tuple = ()
REFUSED_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|Unsupported class) ([\w.]+)")


def load_checkpoint(path: Path | str, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """torch.load of a checkpoint or model file that runs no code from it (weights_only=True and the
    allow-list above). A file whose pickle asks for more is refused with a one-line UserError."""
    try:
        with torch.serialization.safe_globals(list(CHECKPOINT_GLOBALS)):
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = REFUSED_GLOBAL.search(str(exc))
        what = f"it asks for {found.group(1)}" if found else str(exc).splitlines()[0][:120]
        raise UserError(f"{path}: refused to load: {what}, which a tokenmill checkpoint never holds "
                        f"(only tensors and plain data are loaded; a pickle could run code)") from None


class AtomicCheckpointIO(TorchCheckpointIO):
    """torch.save to a temporary file, fsync, rename: a kill mid-write leaves the previous checkpoint whole.
    Loading (Lightning's resume) goes through load_checkpoint: no code from the file runs."""

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        if not Path(path).is_file():
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        return load_checkpoint(path, map_location=map_location or "cpu")

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = exclusive_temp_file(path)  # .<name>.XXXXXXXX.tmp, matched by newest_readable's cleanup
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def run_identity(train: Any, model: Any, meta: dict, tokens: Path) -> dict:
    """What must match for a checkpoint to be resumed (see the module docstring)."""
    tokenizer_file = Path(tokens) / "tokenizer.json"
    tokenizer_sha = _sha256(tokenizer_file.read_bytes()) if tokenizer_file.is_file() else None
    data = {k: v for k, v in meta.items() if k != "corpus"}  # the same tokens wherever the corpus lives
    return {
        "model": to_dict(model),
        "tokenizer": {"vocab_size": meta["vocab_size"], "sha256": tokenizer_sha},
        "train": {k: v for k, v in to_dict(train).items() if k not in RESUMABLE_FIELDS},
        "data": {"meta_sha256": _sha256(json.dumps(data, sort_keys=True).encode("utf-8"))},
    }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def differences(old: dict | None, new: dict) -> list[str]:
    """'model.n_layer: 2 -> 3' for each flattened key whose value differs."""
    if not isinstance(old, dict):
        return ["checkpoint written by an older tokenmill (no run identity)"]
    a, b = _flat(old), _flat(new)
    return [f"{k}: {_short(a.get(k))} -> {_short(b.get(k))}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def incompatible_weights(diffs: list[str]) -> bool:
    return any(d.split(":")[0] in WEIGHT_SHAPE_FIELDS for d in diffs)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, key + ".") if isinstance(v, dict) else {key: v})
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:12] + "…"


def read_checkpoint_info(path: Path) -> dict:
    """The "tokenmill" entry of a checkpoint; raises if the file is torn or not ours.

    mmap=True reads the zip index, not the tensors: cheap even for a 1B-parameter checkpoint, and a
    truncated file (no zip index at its end) fails here."""
    checkpoint = load_checkpoint(path, mmap=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "tokenmill" not in checkpoint:
        raise ValueError("not a tokenmill training checkpoint")
    return checkpoint["tokenmill"]


def newest_readable(directory: Path, move_torn: bool = True) -> tuple[Path | None, dict | None]:
    """The newest checkpoint that loads, and its info. Unreadable ones are renamed *.torn (kept)."""
    directory = Path(directory)
    if move_torn:  # a write killed before its rename: never a whole checkpoint, so nothing is lost
        for partial in [*directory.glob(".*.ckpt.*.tmp"), *directory.glob(".*.ckpt.tmp-*")]:
            partial.unlink(missing_ok=True)
    for path in sorted(directory.glob(CHECKPOINT_GLOB), key=_step_of, reverse=True):
        try:
            return path, read_checkpoint_info(path)
        except Exception as exc:  # torn (killed mid-copy, disk full) or foreign: fall back to the one before
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
            if move_torn:
                torn = path.with_name(path.name + ".torn")
                os.replace(path, torn)
                say(f"train: {path} is unreadable ({reason}); kept as {torn.name}, trying the one before")
    return None, None


def set_aside(directory: Path, diffs: list[str]) -> Path:
    """Move every checkpoint of `directory` into aside/<UTC time>-<first difference>/ with reasons.txt."""
    directory = Path(directory)
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in diffs[0].split(":")[0])[:40] if diffs else "other"
    dest = directory / ASIDE / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{slug}"
    n = 1
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{dest.name.rsplit('~', 1)[0]}~{n}")
    dest.mkdir(parents=True)
    for path in list(directory.glob(CHECKPOINT_GLOB)) + list(directory.glob("*.ckpt.torn")):
        shutil.move(str(path), dest / path.name)
    (dest / "reasons.txt").write_text("\n".join(diffs) + "\n", encoding="utf-8")
    return dest


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` step checkpoints of the current run (never torn or aside ones)."""
    steps = sorted((p for p in Path(directory).glob("step-*.ckpt") if _step_of(p) >= 0), key=_step_of)
    old = steps[:-keep] if keep > 0 else []
    for path in old:
        path.unlink(missing_ok=True)
    return old


def choose_resume(directory: Path, identity: dict, may_move: bool) -> tuple[Path | None, dict | None]:
    """The checkpoint to resume from, or (None, None) to start afresh.

    `may_move`: this process may rename torn checkpoints and set another run's checkpoints aside
    (global rank 0 before any other rank starts; other ranks only read)."""
    path, info = newest_readable(directory, move_torn=may_move)
    if path is None:
        return None, None
    diffs = differences(info.get("identity"), identity)
    if not diffs:
        return path, info
    if may_move:
        kind = "another model shape or tokenizer" if incompatible_weights(diffs) else "another run"
        dest = set_aside(directory, diffs)
        say(f"train: checkpoints in {directory} are from {kind} ({'; '.join(diffs[:3])}"
            f"{'; …' if len(diffs) > 3 else ''}); moved to {dest}, starting afresh")
    return None, None


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---- CPU threads --------------------------------------------------------------------------------------

def cpu_threads(info: dict | None) -> int:
    """Intra-op CPU threads for this fit. The thread count decides how CPU kernels (MKL/oneDNN matmuls,
    reductions) split their sums, so it changes the weights' last bits: a resumed run uses the count its
    checkpoint was trained with. A fresh run: OMP_NUM_THREADS when set, else the CPUs this process may
    use -- never whatever an earlier call in the same process left torch.set_num_threads at."""
    if info and isinstance(info.get("cpu_threads"), int) and info["cpu_threads"] > 0:
        return info["cpu_threads"]
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ---- RNG states -------------------------------------------------------------------------------------

def rng_states() -> dict:
    """Every random state that training draws from in this process, as tensors, ints and strings only
    (a checkpoint stays loadable with torch.load(weights_only=True))."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    version, mt, gauss_next = random.getstate()
    kind, key, pos, has_gauss, cached_gaussian = np.random.get_state()
    return {"python": [version, torch.tensor(mt, dtype=torch.int64), gauss_next],
            "numpy": [kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached_gaussian],
            "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_states(states: dict) -> None:
    version, mt, gauss_next = states["python"]
    random.setstate((version, tuple(int(x) for x in mt.tolist()), gauss_next))
    kind, key, pos, has_gauss, cached_gaussian = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, cached_gaussian))
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
