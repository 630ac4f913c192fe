"""A checkpoint or model file runs no code when tokenmill opens it (torch.load weights_only=True)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from pipeline.cli import main
from training.checkpoints import newest_readable


class WritesAFile:
    """Unpickling this calls open(path, "w"): the file appearing is the proof that code ran."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def planted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "tokenmill": {"identity": {}}, "payload": WritesAFile(marker)}, path)
    return path


def test_evaluate_refuses_a_checkpoint_whose_pickle_would_write_a_file(tmp_path, capsys):
    marker = tmp_path / "pwned"
    model = planted_checkpoint(tmp_path / "it.ckpt", marker)
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "meta.json").write_text("{}")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"tracking": {"enabled": False}}))
    code = main(["evaluate", "--params", str(tmp_path / "params.yaml"), "--model", str(model),
                 "--tokens", str(tmp_path / "tokens"), "--out", str(tmp_path / "m" / "metrics.json")])
    assert not marker.exists()
    assert code != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "it.ckpt" in lines[0] and "refused" in lines[0], lines


def test_a_planted_checkpoint_in_the_checkpoints_directory_is_not_run_at_training_start(tmp_path):
    marker = tmp_path / "pwned"
    planted = planted_checkpoint(tmp_path / "step-00000004.ckpt", marker)
    assert newest_readable(tmp_path) == (None, None)
    assert not marker.exists()
    assert planted.with_name(planted.name + ".torn").exists()  # kept, never loaded again
