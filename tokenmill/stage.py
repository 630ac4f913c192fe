"""What every stage shares: an output written to a temporary path and renamed, and stats.json.

A stage replaces only its own earlier output: a directory whose stats.json names the same stage (or
an empty directory, or nothing). Anything else at the output path (a directory of unrelated files, a
file) is refused with a one-line UserError, unless the caller runs inside `replacing_anything()`
(the CLI's `--force`). Even then only a file (or a symlink: the link, never its target) is replaced;
a directory that is not the stage's own is moved aside to a dated sibling, `<out>.aside-<UTC time>`,
said on one line on stderr: --force never deletes what a stage did not write (SECURITY.md).

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
import sys
import tempfile
import time
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


def forcing() -> bool:
    """True inside `replacing_anything()` (the CLI's --force)."""
    return _replace_anything.get()


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
    """Refuse (UserError) to replace `out` unless it is absent, empty, or `stage`'s own earlier output.
    Under --force a file is replaced and anything else moved aside (module docstring)."""
    if is_url(out):
        return _check_replaceable_url(out, stage)
    out = Path(out)
    if not (out.exists() or out.is_symlink()):
        return
    if out.is_dir() and not out.is_symlink():
        found = output_stage(out)
        if found == stage or (found is None and not any(out.iterdir())):
            return
        what = f"the output of stage '{found}'" if found else f"a directory without a {STATS_FILE}"
    else:
        what = "a file"
    if not _replace_anything.get():
        raise UserError(f"{out}: is {what}, not an earlier {stage} output; not replacing it "
                        f"(choose another --out, or pass --force to move it aside)")
    if what != "a file":
        move_aside(out, what)


def check_replaceable_file(path: str | Path, marker: str) -> None:
    """Refuse to replace a file unless it holds `marker` (what the stage's own output always holds,
    e.g. '"val_loss"' in metrics.json) or is empty. Under --force a file is replaced, a directory
    moved aside."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = None
    if path.is_file() and text is not None and (marker in text or text.strip() in ("", "[]", "{}")):
        return
    if not _replace_anything.get():
        raise UserError(f"{path}: exists and is not an earlier output of this stage (no {marker} in it); "
                        f"not replacing it (choose another --out, or pass --force to replace it)")
    if path.is_dir() and not path.is_symlink():
        move_aside(path, "a directory")


def check_scratch_directory(path: str | Path, marker: str) -> None:
    """A stage's own working directory (e.g. the crawl's `<out>.partial`) is deleted and remade by the
    stage: allowed only when it holds `marker` (a file the stage always writes there first) or is empty.
    Anything else is refused; under --force it is moved aside."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink() and ((path / marker).is_file() or not any(path.iterdir())):
        return
    if not _replace_anything.get():
        raise UserError(f"{path}: is not a working directory of this stage (no {marker} in it); not deleting it "
                        f"(move it away, or pass --force to move it aside)")
    move_aside(path, f"a directory without a {marker}")


def aside_name(path: str) -> str:
    """`<path>.aside-<UTC time>`: where --force puts what it must not delete."""
    return f"{path}.aside-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"


def move_aside(path: Path, what: str) -> Path:
    """Rename `path` to a dated sibling that did not exist (never over anything); say so on stderr."""
    base, n = aside_name(str(path)), 1
    dest = Path(base)
    while True:
        try:
            dest.mkdir()  # exclusive: a name nobody else holds, then `path` moved into its place
            break
        except FileExistsError:
            n += 1
            dest = Path(f"{base}~{n}")
    os.replace(path, dest)  # a directory over the empty one we just made (rename(2) allows it)
    print(f"tokenmill: --force: {path} is {what}; moved aside to {dest} (nothing deleted)", file=sys.stderr)
    return dest


def _check_replaceable_url(out: str, stage: str) -> None:
    fs, root = url_fs(out)
    root = root.rstrip("/")
    fs.invalidate_cache(root)
    if not fs.exists(root):
        return
    if fs.isdir(root):
        found = output_stage(out)
        if found == stage or (found is None and not fs.ls(root)):
            return
        what = f"the output of stage '{found}'" if found else f"a prefix without a {STATS_FILE}"
    else:
        what = "a file"
    if not _replace_anything.get():
        raise UserError(f"{out}: is {what}, not an earlier {stage} output; not replacing it "
                        f"(choose another --out, or pass --force to move it aside)")
    if what != "a file":
        _move_aside_url(out, what)


def _move_aside_url(out: str, what: str) -> str:
    """An object store has no rename: the prefix is copied to `<out>.aside-<time>` and then removed, object
    by object (fsspec's mv); nothing is removed before its copy exists."""
    fs, root = url_fs(out)
    root = root.rstrip("/")
    base, n = aside_name(root), 1
    dest = base
    while fs.exists(dest):
        n += 1
        dest = f"{base}~{n}"
    fs.mv(root, dest, recursive=True)
    fs.invalidate_cache(root)
    scheme = out.split("://", 1)[0]
    print(f"tokenmill: --force: {out} is {what}; moved aside to {scheme}://{dest} (nothing deleted)",
          file=sys.stderr)
    return dest


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
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))  # a new name, never a planted one
    tmp.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700; the output gets the mode mkdir would give it
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
    """Move `src` to `dst`, replacing what is there (the guard above decided it may be replaced): the old
    copy is first moved into a fresh temporary directory beside it, then deleted with it."""
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
    try:
        if dst.exists() or dst.is_symlink():
            os.replace(dst, old / dst.name)  # a symlink is moved as a link: its target is never touched
        os.replace(src, dst)
    finally:
        shutil.rmtree(old, ignore_errors=True)


def exclusive_temp_file(path: Path, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new file beside `path` (O_EXCL via mkstemp: never a name someone planted, never a symlink
    followed), for writing and then renaming onto `path`. Returns the open descriptor and its path."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    return fd, Path(name)


def atomic_write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = exclusive_temp_file(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; the result gets the mode open() would give
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_umask() -> int:
    mask = os.umask(0o022)  # read once, at import (single-threaded): os.umask can only read by setting
    os.umask(mask)
    return mask


_UMASK = _read_umask()


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
