"""A teammate's clone of the main pipeline (dvc.yaml): what `make pull` fetches, what `make status` says.

The raw crawl (`push: false`: personal data) never reaches the DVC remote, and the served sites
(paths.sites, `make site`) are no DVC output at all, so a clone that pulled everything else lacks both
by design. `pulled` names the stages with an output on the remote (`dvc pull` of them exits 0 when the
remote holds what `dvc push` sent); `status` is `dvc status dvc.yaml` -- the main pipeline's (the
fine-tuning example is a DVC project of its own, examples/finetune/.dvc) -- without what is missing by design, which is
what `dvc repro --allow-missing` also skips. Anything else (an edited source, code or params, a modified
or deleted pulled output) is reported as `dvc status` reports it.

    python -m pipeline.team pulled     # the stage names `make pull` passes to `dvc pull`
    python -m pipeline.team status     # `make status`
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipeline.stages import STAGES

PIPELINE = "dvc.yaml"


def pulled() -> list[str]:
    """The stages with an output that `dvc push` sends to the remote (and `dvc pull` brings back)."""
    return [stage.name for stage in STAGES if any(out.pushed for out in stage.outputs)]


def _within(path: str, roots: set[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _git_tracked(path: str, root: Path) -> bool:
    listed = subprocess.run(["git", "ls-files", "--", path], cwd=root, capture_output=True, text=True, check=True)
    return bool(listed.stdout.strip())


def status(root: Path = Path(".")) -> tuple[dict, list[str]]:
    """The main pipeline's `dvc status` without what is missing by design; and those paths."""
    from dvc.repo import Repo

    root = Path(root).resolve()
    with Repo(str(root)) as repo:
        stages = [s for s in repo.index.stages if s.path_in_repo == PIPELINE]
        unpushed = {os.path.relpath(out.fs_path, root) for s in stages for out in s.outs if not out.can_push}
        produced = {os.path.relpath(out.fs_path, root) for s in stages for out in s.outs}
        found = repo.status(targets=[str(root / PIPELINE)])

    def by_design(kind: str, path: str, state: str) -> bool:
        if kind == "changed outs":
            return state in ("not in cache", "deleted") and path in unpushed
        if kind == "changed deps" and state == "deleted":
            # under an unpushed output (the crawl's documents), or an input that no stage writes and git
            # does not track (the served sites): data that only a crawl needs
            return _within(path, unpushed) or (not _within(path, produced) and not _git_tracked(path, root))
        return False

    changed, skipped = {}, set()
    for name, entries in found.items():
        kept = []
        for entry in entries:
            if isinstance(entry, dict):
                left = {}
                for kind, paths in entry.items():
                    if isinstance(paths, dict):
                        missing = {path for path, state in paths.items() if by_design(kind, path, state)}
                        skipped |= missing
                        paths = {path: state for path, state in paths.items() if path not in missing}
                    if paths:
                        left[kind] = paths
                entry = left
            if entry:
                kept.append(entry)
        if kept:
            changed[name] = kept
    return changed, sorted(skipped)


def render_status(changed: dict, skipped: list[str]) -> str:
    lines = []
    for name, entries in changed.items():
        lines.append(f"{name}:")
        for entry in entries:
            if not isinstance(entry, dict):
                lines.append(f"\t{entry}")
                continue
            for kind, paths in entry.items():
                lines.append(f"\t{kind}:")
                if isinstance(paths, dict):
                    for path, state in paths.items():
                        if isinstance(state, dict):  # a params file: {key: state}
                            lines.append(f"\t\t{path}:")
                            lines.extend(f"\t\t\t{str(st) + ':':<20}{key}" for key, st in state.items())
                        else:
                            lines.append(f"\t\t{str(state) + ':':<20}{path}")
                else:
                    lines.append(f"\t\t{paths}")
    if not changed:
        lines.append(f"{PIPELINE}: data and pipeline are up to date.")
    if skipped:
        lines.append(f"(not here by design, as in a pulled clone: {', '.join(skipped)}; "
                     "`make site` and `dvc repro crawl` bring them)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["pulled"]:
        print(" ".join(pulled()))
        return 0
    if args == ["status"]:
        print(render_status(*status()))
        return 0
    print("usage: python -m pipeline.team pulled|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
