"""Corpus versions: what dvc.lock recorded for the corpus in git history, named by `corpus-vN` tags.

A version is published (`publish`) by pushing the corpus to the DVC remote, committing dvc.lock and
tagging that commit `corpus-vN`. `versions` lists every corpus hash dvc.lock ever recorded (tagged or
not) with its documents and tokens, read from the DVC cache, and the MLflow runs trained on it (the
training tags its run `corpus.dvc_md5`). `checkout` brings a version's data back into the workspace.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tokenmill.errors import UserError

TAG_PREFIX = "corpus-v"
TAG_PATTERN = re.compile(r"corpus-v(\d+)")
LOCK = "dvc.lock"
CACHE = Path(".dvc") / "cache" / "files" / "md5"


@dataclass
class CorpusVersion:
    md5: str  # DVC's hash of the corpus directory
    commit: str  # the first commit whose dvc.lock records it
    date: str
    tag: str | None = None  # corpus-vN when published
    documents: int | None = None
    tokens: int | None = None  # train + val tokens of the tokenize output recorded with it
    runs: list[str] = field(default_factory=list)  # MLflow runs trained on it

    @property
    def name(self) -> str:
        return self.tag or self.commit[:10]


def git(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and proc.returncode:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"git {' '.join(args[:2])}: {last[0]}")
    return proc.stdout


def run_dvc(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"dvc {' '.join(args[:2])}: {last[0]}")
    return proc.stdout


def _outs(lock: dict, path: str, stage: str | None = None) -> list[dict[str, Any]]:
    stages = (lock or {}).get("stages", {}) or {}
    return [dict(out, stage=name) for name, entry in stages.items() if stage in (None, name)
            for out in entry.get("outs", []) or [] if Path(out.get("path", "")) == Path(path)]


def locked_md5(lock: dict, corpus: str) -> str | None:
    """The corpus hash a parsed dvc.lock records (as the output of any stage), or None."""
    outs = _outs(lock, corpus)
    return outs[0].get("md5") if outs else None


def lock_at(rev: str) -> dict:
    text = git("show", f"{rev}:{LOCK}", check=False)
    return (yaml.safe_load(text) or {}) if text else {}


def tags() -> dict[str, str]:
    """corpus-vN tag -> the commit it names, in version order."""
    found = {}
    for line in git("tag", "--list", f"{TAG_PREFIX}*").split():
        if TAG_PATTERN.fullmatch(line):
            found[line] = git("rev-list", "-n", "1", line).strip()
    return dict(sorted(found.items(), key=lambda item: int(TAG_PATTERN.fullmatch(item[0]).group(1))))


def cached_file(dir_md5: str, relpath: str) -> Path | None:
    """A file of a DVC-tracked directory, from the cache's .dir manifest; None when not cached."""
    manifest = CACHE / dir_md5[:2] / dir_md5[2:]
    if not manifest.is_file():
        return None
    for entry in json.loads(manifest.read_text(encoding="utf-8")):
        if entry.get("relpath") == relpath:
            path = CACHE / entry["md5"][:2] / entry["md5"][2:]
            return path if path.is_file() else None
    return None


def _cached_json(dir_md5: str | None, relpath: str) -> dict:
    path = cached_file(dir_md5, relpath) if dir_md5 else None
    return json.loads(path.read_text(encoding="utf-8")) if path else {}


def versions(params, with_runs: bool = True) -> list[CorpusVersion]:
    """Every corpus version dvc.lock recorded in git history (oldest first), tagged or not."""
    corpus, tokens = params.paths.corpus, params.paths.tokens
    git("rev-parse", "--git-dir")  # a one-line error outside a git repository
    by_md5: dict[str, CorpusVersion] = {}
    log = git("log", "--reverse", "--format=%H %cI", "--", LOCK, check=False).splitlines()
    tagged = tags()
    commits = [line.split() for line in log] + [[commit, ""] for commit in tagged.values()]
    for commit, date in commits:
        lock = lock_at(commit)
        md5 = locked_md5(lock, corpus)
        if not md5:
            continue
        version = by_md5.setdefault(md5, CorpusVersion(md5=md5, commit=commit, date=date))
        if version.tokens is None:
            token_outs = [out for out in _outs(lock, tokens)
                          if any(dep.get("md5") == md5 for dep in lock["stages"][out["stage"]].get("deps", []))]
            meta = _cached_json(token_outs[0]["md5"], "meta.json") if token_outs else {}
            if meta:
                version.tokens = sum(meta.get(split, {}).get("tokens", 0) for split in ("train", "val"))
    for tag, commit in tagged.items():
        md5 = locked_md5(lock_at(commit), corpus)
        if md5 in by_md5 and by_md5[md5].tag is None:
            by_md5[md5].tag = tag
    for version in by_md5.values():
        version.documents = _cached_json(version.md5, "stats.json").get("documents_out")
    if with_runs and by_md5:
        for md5, run_ids in runs_by_corpus(params.tracking).items():
            if md5 in by_md5:
                by_md5[md5].runs = run_ids
    return list(by_md5.values())


def runs_by_corpus(tracking) -> dict[str, list[str]]:
    """corpus DVC hash -> MLflow run ids trained on it (their `corpus.dvc_md5` tag)."""
    if not tracking.enabled:
        return {}
    from training.tracking import client as mlflow_client

    client = mlflow_client(tracking)
    experiment = client.get_experiment_by_name(tracking.experiment)
    if experiment is None:
        return {}
    found: dict[str, list[str]] = {}
    for run in client.search_runs([experiment.experiment_id], max_results=10000, order_by=["start_time ASC"]):
        md5 = run.data.tags.get("corpus.dvc_md5")
        if md5:
            found.setdefault(md5, []).append(run.info.run_id)
    return found


def find(params, name: str) -> CorpusVersion:
    """A version by tag (corpus-v3), commit prefix or DVC hash prefix; UserError naming what exists."""
    candidates = versions(params, with_runs=False)
    for version in candidates:
        if name in (version.tag, version.md5) or (len(name) >= 6 and (version.commit.startswith(name)
                                                                       or version.md5.startswith(name))):
            return version
    known = ", ".join(v.name for v in candidates) or "none yet (publish one with the prepare flow)"
    raise UserError(f"corpus version {name!r} not found; known versions: {known}")


def format_versions(found: list[CorpusVersion]) -> str:
    if not found:
        return "no corpus versions yet: dvc.lock has no corpus in git history"
    rows = [("version", "documents", "tokens", "dvc hash", "commit", "MLflow runs")]
    rows += [(v.name, "-" if v.documents is None else str(v.documents), "-" if v.tokens is None else str(v.tokens),
              v.md5, v.commit[:10], ",".join(v.runs) or "-") for v in found]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def checkout(params, name: str) -> CorpusVersion:
    """Bring `name`'s corpus into the workspace: its dvc.lock, then `dvc checkout` (`dvc pull` when not cached).

    dvc.lock is then that version's (git shows it modified); `git checkout HEAD -- dvc.lock` and
    `dvc checkout` come back to the latest."""
    version = find(params, name)
    git("checkout", version.commit, "--", LOCK)
    try:
        run_dvc("checkout", "--force", params.paths.corpus)
    except UserError:
        run_dvc("pull", "--force", params.paths.corpus)
    return version


def next_tag() -> str:
    numbers = [int(TAG_PATTERN.fullmatch(tag).group(1)) for tag in tags()]
    return f"{TAG_PREFIX}{max(numbers, default=0) + 1}"


def publish(params, push: bool = True) -> tuple[CorpusVersion, bool]:
    """Publish the corpus dvc.lock records now: push it to the DVC remote, commit dvc.lock, tag `corpus-vN`.

    Returns (version, True) when a new version was tagged, (latest version, False) when the latest
    tag already names this corpus."""
    corpus = params.paths.corpus
    if not Path(LOCK).is_file():
        raise UserError(f"{LOCK}: not found; run the prepare stage (dvc repro prepare) first")
    md5 = locked_md5(yaml.safe_load(Path(LOCK).read_text(encoding="utf-8")), corpus)
    if md5 is None:
        raise UserError(f"{LOCK}: records no {corpus}; run the prepare stage first")
    tagged = tags()
    if tagged:
        last_tag, last_commit = list(tagged.items())[-1]
        if locked_md5(lock_at(last_commit), corpus) == md5:
            return CorpusVersion(md5=md5, commit=last_commit, date="", tag=last_tag), False
    if push:
        run_dvc("push", "-q", corpus)
    tag = next_tag()
    git("add", LOCK)
    if _staged(LOCK):  # unchanged since the last commit (published by hand): tag that commit
        git("commit", "-q", "-m", f"{tag}: corpus {md5}", "--", LOCK)
    git("tag", tag)
    commit = git("rev-parse", "HEAD").strip()
    return CorpusVersion(md5=md5, commit=commit, date="", tag=tag), True


def _staged(path: str) -> bool:
    return subprocess.run(["git", "diff", "--cached", "--quiet", "--", path]).returncode == 1
