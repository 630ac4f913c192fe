"""The emitted SLURM and torchrun scripts quote every value they interpolate, and never overwrite a
script that differs from the one they would write (--force replaces it)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipeline.params import load_params
from pipeline.slurm import emit
from tokenmill.errors import UserError
from tokenmill.stage import replacing_anything

HOSTILE = "x $(touch {marker}) `touch {marker}` ; touch {marker} 'q'"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / HOSTILE.format(marker="p1")
    directory.mkdir()
    monkeypatch.chdir(directory)
    (directory / "params.yaml").write_text("train:\n  max_steps: 10\n")
    return directory


def test_no_interpolated_value_runs_as_shell(project: Path, tmp_path: Path):
    marker = tmp_path / "pwned"
    hostile = HOSTILE.format(marker=marker)
    emit(load_params("params.yaml"), 1, 2, params_path="params.yaml", overrides=[f"train.lr={hostile}"],
         python=f"/opt/py {hostile}")
    for script in ("train.sbatch", "torchrun.sh"):  # srun and the python it runs are stand-ins that do nothing
        run = subprocess.run(["bash", "-c", f'srun() {{ :; }}; HEAD_NODE=h; source "$0"', f"slurm/{script}"],
                             cwd=project, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert not marker.exists(), (script, run.stderr)
        assert not (project / "p1").exists() and not (tmp_path / "p1").exists(), (script, run.stderr)


def test_a_time_limit_cannot_add_lines_to_the_script(project: Path):
    with pytest.raises(UserError, match="time limit"):
        emit(load_params("params.yaml"), 1, 1, time_limit="1:00:00\nrm -rf ~")


def test_an_edited_script_is_not_overwritten_without_force(project: Path):
    emit(load_params("params.yaml"), 1, 2)
    emit(load_params("params.yaml"), 1, 2)  # the same script again: nothing to lose
    sbatch = project / "slurm" / "train.sbatch"
    sbatch.write_text(sbatch.read_text() + "# my account\n#SBATCH --account=mine\n")
    with pytest.raises(UserError, match="train.sbatch.*--force") as info:
        emit(load_params("params.yaml"), 2, 2)
    assert "\n" not in str(info.value) and "--account=mine" in sbatch.read_text()
    with replacing_anything():
        emit(load_params("params.yaml"), 2, 2)
    assert "--account=mine" not in sbatch.read_text()
