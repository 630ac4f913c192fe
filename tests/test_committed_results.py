"""The committed dvc.lock and metrics.json are the results of the code at HEAD.

A fresh clone's `make demo` must find nothing to rerun for reasons of code or params, and the figures
committed in metrics.json must be the ones dvc.lock records. This fails when a change to a stage's code,
its params or the stage table lands without the demo's lock and metrics being regenerated
(`make demo`, then commit dvc.lock and metrics.json). Data dependencies (the site, the crawl, the
models) are not in git and are not compared.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _tracked() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return set(listed.stdout.split())


def _in_git(path: str, tracked: set[str]) -> bool:
    return path in tracked or any(name.startswith(path.rstrip("/") + "/") for name in tracked)


def _stale_entries() -> list[str]:
    from dvc.repo import Repo

    tracked = _tracked()
    if not (ROOT / "dvc.lock").is_file():
        return ["dvc.lock: not committed"]
    locked = set((yaml.safe_load((ROOT / "dvc.lock").read_text(encoding="utf-8")) or {}).get("stages", {}))
    stale = []
    with Repo(str(ROOT)) as repo:
        for stage in (s for s in repo.index.stages if s.path_in_repo == "dvc.yaml"):
            if stage.name not in locked:
                stale.append(f"{stage.name}: not in dvc.lock")
                continue
            for dep in stage.deps:
                if _in_git(dep.def_path, tracked) and dep.status():
                    stale.append(f"{stage.name}: {dep.status()}")
            for out in stage.outs:
                if not out.use_cache and _in_git(out.def_path, tracked) and out.status():
                    stale.append(f"{stage.name}: {out.status()}")
    return stale


def test_the_committed_lock_and_metrics_match_the_code():
    stale = _stale_entries()
    assert not stale, ("dvc.lock / metrics.json are stale (run `make demo` and commit them):\n  "
                       + "\n  ".join(map(str, stale)))
