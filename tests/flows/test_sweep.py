"""`tokenmill sweep`: DVC experiments (`dvc exp run -S`) side by side, grouped under a parent MLflow run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline_fixture import init_repo, make_project, project_env, run

ROOT = Path(__file__).resolve().parents[2]


def test_parse_grid_and_points():
    from flows.sweep import parse_grid, points
    from tokenmill.errors import UserError

    grid = parse_grid(["train.lr=0.001,0.003", "model.preset=nano"])
    assert grid == {"train.lr": [0.001, 0.003], "model.preset": ["nano"]}
    assert points(grid) == [{"train.lr": 0.001, "model.preset": "nano"}, {"train.lr": 0.003, "model.preset": "nano"}]
    with pytest.raises(UserError, match="expected KEY=V1,V2"):
        parse_grid(["train.lr"])


@pytest.mark.slow
def test_sweep_runs_one_dvc_experiment_per_point_under_a_parent_run(tmp_path: Path):
    import mlflow

    project = init_repo(make_project(tmp_path / "project"), tmp_path / "remote")
    # The stages call the `tokenmill` console script: this checkout's, whatever the venv has installed.
    shim = tmp_path / "bin" / "tokenmill"
    shim.parent.mkdir()
    shim.write_text(f"#!{sys.executable}\nimport sys\nfrom pipeline.cli import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    env = {**project_env(project), "PYTHONPATH": str(ROOT),
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180"}  # a loaded CI machine
    env["PATH"] = f"{shim.parent}{os.pathsep}{env['PATH']}"

    def sh(*cmd: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(list(cmd), cwd=project, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc

    # As the project's own .gitignore: the tracking store is not part of the git tree that experiments copy.
    (project / ".gitignore").write_text("/mlflow/\n/.tokenmill/\n")
    sh(sys.executable, "-m", "dvc", "repro", "-q")
    sh("git", "add", "-A")
    sh("git", "commit", "-qm", "baseline")
    proc = sh(sys.executable, "-m", "pipeline.cli", "sweep", "train.lr=0.001,0.004", "--parallel", "2")
    result = json.loads(proc.stdout[proc.stdout.index("{"):])

    assert len(result["experiments"]) == 2
    shown = sh(sys.executable, "-m", "dvc", "exp", "show", "--json").stdout
    assert all(f'"{name}"' in shown for name in result["experiments"]), shown[:3000]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project}/mlflow/mlflow.db")
    children = client.search_runs(
        [client.get_run(result["parent_run"]).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{result['parent_run']}'")
    assert sorted(float(r.data.params["train.lr"]) for r in children) == [0.001, 0.004]
    assert all("eval/bits_per_byte" in r.data.metrics for r in children)
    # The workspace is untouched: its params and results are the baseline's.
    assert "Running stage" not in run([sys.executable, "-m", "dvc", "repro"], project)
