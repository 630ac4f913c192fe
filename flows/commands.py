"""Commands a flow runs (DVC, git, `tokenmill train`), their output streamed into the run's log."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from prefect import get_run_logger

from flows.locks import path_lock
from tokenmill.errors import TransientError

DVC = [sys.executable, "-m", "dvc"]


class CommandFailed(RuntimeError):
    """A command exited non-zero; the message is its last line of output, the whole of it is in the log."""


def retry_transient(task, task_run, state) -> bool:
    """A task's retry condition: retry a fault that may pass (a crashed or unfinished crawl), never a mistake
    to fix."""
    return isinstance(state.data, TransientError)


def run_command(command: list[str], cwd: Path | None = None) -> str:
    """Run `command`, logging each line of its output; returns the output, raises CommandFailed."""
    logger = get_run_logger()
    logger.info("running: %s", " ".join(command))
    lines = []
    with subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            lines.append(line.rstrip())
            logger.info(lines[-1])
    if proc.returncode:
        last = next((line for line in reversed(lines) if line.strip()), "no output")
        raise CommandFailed(f"{' '.join(command[:4])} exited with status {proc.returncode}: {last}")
    return "\n".join(lines)


def in_dvc_repo() -> bool:
    return Path(".dvc").is_dir()


def dvc(*args: str) -> str:
    """A DVC command, one at a time per repository (DVC's own lock would fail the second)."""
    with path_lock("dvc"):
        return run_command([*DVC, *args])


def stage_changes(stage: str) -> dict:
    """What `dvc status STAGE` reports changed for the stage alone ({} when it is up to date)."""
    with path_lock("dvc"):
        proc = subprocess.run([*DVC, "status", "--json", stage], capture_output=True, text=True)
    if proc.returncode:
        raise CommandFailed(f"dvc status {stage} exited with status {proc.returncode}: "
                            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return json.loads(proc.stdout or "{}")
