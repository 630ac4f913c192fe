"""`tokenmill compare RUN_A RUN_B` over two runs in a real MLflow store."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, str, str]:
    import mlflow

    (tmp_path / "mlflow").mkdir()
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow/mlflow.db")
    experiment = client.create_experiment("tokenmill", artifact_location=(tmp_path / "artifacts").as_uri())
    ids = []
    for lr, corpus, final in ((0.002, "corpus-v1", 2.1), (0.004, "corpus-v2", 1.9)):
        run = client.create_run(experiment, tags={"corpus.version": corpus, "corpus.dvc_md5": f"{corpus}md5.dir"})
        for key, value in {"train.lr": lr, "train.max_steps": 8, "model.preset": "nano"}.items():
            client.log_param(run.info.run_id, key, value)
        for step in range(1, 9):
            client.log_metric(run.info.run_id, "train/loss", 6.0 - step * lr * 50, step=step)
        client.log_metric(run.info.run_id, "val/loss", 5.0 - lr * 100, step=8)
        client.log_metric(run.info.run_id, "eval/bits_per_byte", final)
        ids.append(run.info.run_id)
    (tmp_path / "params.yaml").write_text("tracking:\n  tracking_uri: sqlite:///mlflow/mlflow.db\n")
    return tmp_path, ids[0], ids[1]


def tokenmill(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_compare_writes_params_diff_metrics_corpus_versions_and_loss_curves(runs):
    cwd, a, b = runs
    proc = tokenmill(cwd, "compare", a, b, "--out", "cmp.html")
    assert proc.returncode == 0, proc.stderr
    page = (cwd / "cmp.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    assert "<td>train.lr</td><td>0.002</td><td>0.004</td>" in rows
    assert not any("<td>train.max_steps</td>" in row for row in rows), "params that agree are not listed"
    assert "<td>eval/bits_per_byte</td><td>2.1</td><td>1.9</td>" in rows
    assert f"<td>{a}</td><td>corpus-v1</td><td>corpus-v1md5.dir</td>" in rows
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_unknown_run_is_one_line(runs):
    cwd, a, _ = runs
    proc = tokenmill(cwd, "compare", a, "0" * 32)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(f"tokenmill compare: error: MLflow run '{'0' * 32}' not")
