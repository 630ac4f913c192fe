"""A throwaway project directory with a tiny site, a tiny source and tiny params, for whole-pipeline tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import yaml

from sitegen import make_site

ROOT = Path(__file__).resolve().parents[1]

TINY_OVERRIDES = {
    "crawl": {"sources": ["tiny"]},
    "tokenize": {"vocab_size": 400},
    "model": {"preset": "nano"},
    "train": {"max_steps": 8, "batch_size": 4, "warmup_steps": 2, "checkpoint_every": 4, "val_every": 4,
              "log_every": 1},
    "evaluate": {"max_tokens": 4096, "max_new_tokens": 8},
}


def tiny_params() -> dict:
    from tokenmill.config import to_dict
    from pipeline.params import load_params

    data = to_dict(load_params(ROOT / "params.yaml"))
    for section, values in TINY_OVERRIDES.items():
        data[section].update(values)
    return data


def make_project(root: Path) -> Path:
    """Lay out a project at `root`: code dirs (stage deps), dvc.yaml, params, the tiny source and site."""
    root.mkdir(parents=True, exist_ok=True)
    for name in ("tokenmill", "crawler", "dataprep", "training", "pipeline"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".dvcignore", root / ".dvcignore")
    make_site(root / "data" / "sites" / "tiny")
    (root / "sources").mkdir()
    (root / "sources" / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny",
        "serve": "data/sites/tiny",
        "start_urls": ["/en/index.html", "/fa/index.html", "/pl/index.html"],
        "max_pages": 50,
        "max_depth": 3,
        "allow_private": True,
        "delay_s": 0,  # a local copy: no politeness delay (the defaults are for real sites)
        "concurrency": 8,
    }), encoding="utf-8")
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False), encoding="utf-8")
    from pipeline import dvcfile

    # dvc.yaml as `python -m pipeline.dvcfile` writes it for these params: the crawl depends on sources/tiny.yaml
    (root / "dvc.yaml").write_text(dvcfile.render(root), encoding="utf-8")
    return root


def project_env(root: Path) -> dict[str, str]:
    """The environment a user has after `make`: the venv's commands on PATH, a store under mlflow/."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = "sqlite:///mlflow/mlflow.db"
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("PREFECT_API_URL", None)
    return env


def run(cmd: list[str], cwd: Path) -> str:
    """Run a command as a user of the project would; fail the test with its output if it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc.stdout + proc.stderr


def init_repo(root: Path, remote: Path) -> Path:
    """Make `root` a git repository with DVC initialised and a local DVC remote, everything committed."""
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q"], root)
    run(["git", "config", "user.email", "ci@example.org"], root)
    run(["git", "config", "user.name", "CI"], root)
    run(dvc + ["init", "-q"], root)
    run(dvc + ["config", "core.analytics", "false"], root)
    run(dvc + ["remote", "add", "-d", "local", str(remote)], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", "project"], root)
    return root


@contextmanager
def served_deployments(project: Path, home: Path) -> Iterator[tuple[str, dict[str, str], subprocess.Popen, Path]]:
    """A local Prefect server on 127.0.0.1 (its home and log under `home`) and `python -m flows.serve`
    serving `project`'s deployments there: yields (API URL, the served process's environment, that
    process, its log file)."""
    from flows.server import free_port, local_server

    env = {**project_env(project), "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(home / "prefect-home"),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    serve_log = home / "serve.log"
    with local_server(free_port(), home=home / "prefect-home", log=home / "server.log") as api_url:
        env["PREFECT_API_URL"] = api_url
        with open(serve_log, "wb") as log:
            served = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=project, env=env, stdout=log,
                                      stderr=subprocess.STDOUT)
        try:
            yield api_url, env, served, serve_log
        finally:
            served.terminate()
            served.wait(timeout=30)
