"""What every stage shares: an output written to a temporary path and renamed, and stats.json.

A stage replaces only its own earlier output: a directory whose stats.json names the same stage (or
an empty directory, or nothing). Anything else at the output path (a directory of unrelated files, a
file) is refused with a one-line UserError, unless the caller runs inside `replacing_anything()`
(the CLI's `--force`).

An output at a URL (`s3://bucket/prefix`, see tokenmill/documents.py) cannot be renamed into place:
object stores have no rename. The stage writes to a local temporary directory as always; only after
it succeeded is the result uploaded. The old output's stats.json is deleted first, then the rest of
it, the new files are uploaded, and the new stats.json last: an output without stats.json is
incomplete (a crash during the upload), and no stage reads it as a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tokenmill.locations import is_url, url_fs
from tokenmill.errors import UserError

STATS_FILE = "stats.json"
_replace_anything: ContextVar[bool] = ContextVar("replace_anything", default=False)


@contextmanager
def replacing_anything() -> Iterator[None]:
    """Within this block stages may replace whatever is at their output path (`--force`)."""
    token = _replace_anything.set(True)
    try:
        yield
    finally:
        _replace_anything.reset(token)


def output_stage(path: str | Path) -> str | None:
    """The stage named in `path`/stats.json, or None when there is no readable one."""
    try:
        if is_url(path):
            fs, root = url_fs(path)
            data = json.loads(fs.cat_file(f"{root.rstrip('/')}/{STATS_FILE}").decode("utf-8"))
        else:
            data = json.loads((Path(path) / STATS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("stage") if isinstance(data, dict) else None


def check_replaceable(out: str | Path, stage: str) -> None:
    """Refuse (UserError) to replace `out` unless it is absent, empty, or `stage`'s own earlier output."""
    if is_url(out):
        return _check_replaceable_url(out, stage)
    out = Path(out)
    if _replace_anything.get() or not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink():
        found = output_stage(out)
        if found == stage or (found is None and not any(out.iterdir())):
            return
        what = f"the output of stage '{found}'" if found else f"a directory without a {STATS_FILE}"
    else:
        what = "a file"
    raise UserError(f"{out}: is {what}, not an earlier {stage} output; not replacing it "
                    f"(choose another --out, or pass --force to replace it)")


def check_replaceable_file(path: str | Path, marker: str) -> None:
    """Refuse to replace a file unless it holds `marker` (what the stage's own output always holds,
    e.g. '"val_loss"' in metrics.json) or is empty."""
    path = Path(path)
    if _replace_anything.get() or not (path.exists() or path.is_symlink()):
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    if path.is_file() and text is not None and (marker in text or text.strip() in ("", "[]", "{}")):
        return
    raise UserError(f"{path}: exists and is not an earlier output of this stage (no {marker} in it); "
                    f"not replacing it (choose another --out, or pass --force to replace it)")


def _check_replaceable_url(out: str, stage: str) -> None:
    fs, root = url_fs(out)
    root = root.rstrip("/")
    fs.invalidate_cache(root)
    if _replace_anything.get() or not fs.exists(root):
        return
    if fs.isdir(root):
        found = output_stage(out)
        if found == stage or (found is None and not fs.ls(root)):
            return
        what = f"the output of stage '{found}'" if found else f"a prefix without a {STATS_FILE}"
    else:
        what = "a file"
    raise UserError(f"{out}: is {what}, not an earlier {stage} output; not replacing it "
                    f"(choose another --out, or pass --force to replace it)")


@contextmanager
def atomic_directory(out: str | Path, stage: str | None = None) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `out`; on success it replaces `out` in one rename.

    A crash leaves `out` as it was (old result or nothing), never half-written. `out` is replaced
    only when it is the same stage's earlier output (the stage is read from the new stats.json).
    A URL `out` is uploaded from a local temporary directory once the block succeeded (module docstring).
    """
    if is_url(out):
        with _uploaded_directory(out, stage) as tmp:
            yield tmp
        return
    out = Path(out)
    if stage is not None:
        check_replaceable(out, stage)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        check_replaceable(out, stage or output_stage(tmp) or "")
    except UserError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_path(tmp, out)


@contextmanager
def _uploaded_directory(out: str, stage: str | None) -> Iterator[Path]:
    if stage is not None:
        check_replaceable(out, stage)
    with tempfile.TemporaryDirectory(prefix="tokenmill-out-") as tmpdir:
        tmp = Path(tmpdir)
        yield tmp
        check_replaceable(out, stage or output_stage(tmp) or "")
        upload_directory(tmp, out)


def upload_directory(local: Path, out: str) -> None:
    """Replace the prefix `out` by the files of `local`, stats.json last (see the module docstring)."""
    fs, root = url_fs(out)
    root = root.rstrip("/")
    fs.invalidate_cache(root)
    if fs.exists(f"{root}/{STATS_FILE}"):
        fs.rm_file(f"{root}/{STATS_FILE}")  # first: from here on the old output reads as incomplete
    if fs.exists(root):
        fs.rm(root, recursive=True)
    files = sorted(p for p in local.rglob("*") if p.is_file())
    stats = local / STATS_FILE
    for file in [f for f in files if f != stats] + ([stats] if stats in files else []):
        fs.put_file(str(file), f"{root}/{file.relative_to(local).as_posix()}")
    fs.invalidate_cache(root)


def replace_path(src: Path, dst: Path) -> None:
    """Move `src` to `dst`, replacing what is there; the old copy is moved aside first."""
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    if dst.exists() or dst.is_symlink():
        os.replace(dst, old)
    os.replace(src, dst)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists():
        old.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(path: str | Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


@dataclass
class StageStats:
    """Counts a stage reports in stats.json: documents and bytes in and out, removals by reason."""

    stage: str
    documents_in: int = 0
    bytes_in: int = 0
    documents_out: int = 0
    bytes_out: int = 0
    removed: Counter = field(default_factory=Counter)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "documents_in": self.documents_in,
            "bytes_in": self.bytes_in,
            "documents_out": self.documents_out,
            "bytes_out": self.bytes_out,
            "removed": dict(sorted(self.removed.items())),
            **self.extra,
        }

    def write(self, directory: str | Path) -> None:
        write_json(Path(directory) / "stats.json", self.to_dict())


WORK_RUN_FILE = "run.json"  # in a work directory: the inputs and settings it is for


def work_directory(out: str | Path, stage: str, run: dict[str, Any]) -> Path:
    """Where a resumable stage keeps its finished pieces (completion markers) until it succeeds: beside a
    local `out` (`.NAME.<stage>-work`), in the temporary directory for a URL. A run of other inputs or
    settings (`run`, recorded in WORK_RUN_FILE) starts it afresh; a directory without that file is not
    a work directory: refused, never deleted. The stage removes it once its output is in place."""
    name = str(out).rstrip("/")
    if is_url(out):
        import hashlib

        where = Path(tempfile.gettempdir()) / f"tokenmill-{stage}-{hashlib.blake2b(name.encode(), digest_size=8).hexdigest()}"
    else:
        where = Path(out).with_name(f".{Path(out).name}.{stage}-work")
    record = json.dumps(run, sort_keys=True, default=str)
    if where.exists():
        if not (where / WORK_RUN_FILE).is_file():
            raise UserError(f"{where}: exists and is not a {stage} work directory; remove it or choose another --out")
        if (where / WORK_RUN_FILE).read_text(encoding="utf-8") == record:
            return where
        shutil.rmtree(where)
    where.mkdir(parents=True)
    (where / WORK_RUN_FILE).write_text(record, encoding="utf-8")
    return where


def file_identity(file: Any) -> list:
    """A local file's name, size and modification time (a URL: its name): a changed input is not resumed."""
    if is_url(file):
        return [str(file)]
    stat = os.stat(file)
    return [str(file), stat.st_size, stat.st_mtime_ns]
