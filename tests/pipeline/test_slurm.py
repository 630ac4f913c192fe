"""`tokenmill train --emit-slurm NODES GPUS`: an sbatch script and a torchrun recipe that run `tokenmill train`."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def emitted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> subprocess.CompletedProcess:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("train:\n  max_steps: 10\n")
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "train", *args], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)


def srun_train_args(script: str) -> list[str]:
    line = next(line for line in script.splitlines() if line.startswith("srun "))
    return shlex.split(line)[3:]  # srun python -m pipeline.cli train ...


def test_sbatch_script_runs_one_task_per_gpu_with_lightnings_slurm_environment(tmp_path, monkeypatch):
    from pipeline.cli import build_parser
    from pipeline.params import load_params

    proc = emitted(tmp_path, monkeypatch, "--emit-slurm", "2", "4", "--slurm-dir", "cluster")
    assert proc.returncode == 0, proc.stderr
    script = (tmp_path / "cluster/train.sbatch").read_text()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4"):
        assert line in script.splitlines(), line
    assert subprocess.run(["bash", "-n", str(tmp_path / "cluster/train.sbatch")]).returncode == 0
    # The srun line is a `tokenmill train` the CLI parses, with the cluster shape as params.
    args = build_parser().parse_args(srun_train_args(script)[1:])
    assert args.command == "train"
    params = load_params(args.params, args.overrides)
    assert (params.train.num_nodes, str(params.train.devices), params.train.strategy) == (2, "4", "ddp")
    assert not (tmp_path / "models").exists(), "emitting trains nothing"


def test_torchrun_recipe_names_the_same_training_and_needs_the_head_node(tmp_path, monkeypatch):
    proc = emitted(tmp_path, monkeypatch, "--emit-slurm", "1", "2", "--slurm-dir", "cluster")
    assert proc.returncode == 0, proc.stderr
    recipe = tmp_path / "cluster/torchrun.sh"
    text = recipe.read_text()
    assert "--nnodes=1 --nproc-per-node=2" in text
    assert "-m pipeline.cli train --params params.yaml --set train.num_nodes=1" not in text  # params has it already
    assert "--set train.devices=2 --set train.strategy=ddp" in text
    assert subprocess.run(["bash", "-n", str(recipe)]).returncode == 0
    missing = subprocess.run(["bash", str(recipe)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert missing.returncode != 0 and "set HEAD_NODE" in missing.stderr


def test_bad_shape_is_one_line(tmp_path, monkeypatch):
    proc = emitted(tmp_path, monkeypatch, "--emit-slurm", "0", "4")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["tokenmill train: error: --emit-slurm 0 4: NODES and GPUS must be "
                                                "at least 1"]
