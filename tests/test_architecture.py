"""The one-way architecture in pyproject.toml ([tool.importlinter]) holds for every import, including
imports inside functions: core <- crawler | dataprep | training <- pipeline <- flows."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([command, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_layers_contract_is_kept():
    proc = lint_imports(ROOT)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_contract_catches_a_function_level_import_upwards(tmp_path: Path):
    """The check can fail: a copy of the code with the core importing the CLI inside a function breaks it."""
    for name in ("tokenmill", "crawler", "dataprep", "training", "pipeline", "flows"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "tokenmill" / "stage.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef _sneaky():\n    from pipeline.cli import main\n\n    return main\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "tokenmill.stage -> pipeline.cli" in proc.stdout, proc.stdout[-4000:]


def test_no_module_imports_another_that_imports_it_back():
    """Import cycles, module to module, function-level imports included (TYPE_CHECKING ones run nothing)."""
    from pipeline import codegraph

    assert codegraph.cycles() == []


def test_a_function_level_import_cycle_is_found(tmp_path: Path):
    from pipeline import codegraph

    for name in codegraph.PACKAGES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "pipeline" / "summary.py", "a", encoding="utf-8") as f:
        f.write("\n\ndef _back():\n    from pipeline.report import write_report\n\n    return write_report\n")
    assert ["pipeline.report", "pipeline.summary"] in codegraph.cycles(tmp_path)
