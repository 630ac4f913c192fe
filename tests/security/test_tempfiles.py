"""Temporary names are created exclusively (mkstemp/mkdtemp): a file, symlink or directory planted at
the name a writer used to pick (`.<name>.tmp-<pid>`) is neither followed, overwritten nor deleted."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tokenmill.stage import StageStats, atomic_directory, write_json
from training.checkpoints import AtomicCheckpointIO


def planted_link(directory: Path, name: str, victim: Path) -> Path:
    link = directory / name
    link.symlink_to(victim)
    return link


def test_write_json_does_not_follow_a_symlink_planted_at_its_temporary_name(tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    planted_link(out, f".metrics.json.tmp-{os.getpid()}", victim)
    write_json(out / "metrics.json", {"val_loss": 1.0})
    assert victim.read_text() == "precious"
    assert not (out / "metrics.json").is_symlink() and '"val_loss"' in (out / "metrics.json").read_text()


def test_a_checkpoint_write_does_not_follow_a_symlink_planted_at_its_temporary_name(tmp_path: Path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    planted_link(ckpt, f".step-00000004.ckpt.tmp-{os.getpid()}", victim)
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.zeros(2)}}, ckpt / "step-00000004.ckpt")
    assert victim.read_text() == "precious"
    assert torch.load(ckpt / "step-00000004.ckpt", weights_only=True)["state_dict"]["w"].shape == (2,)


def test_a_stage_does_not_delete_a_directory_planted_at_its_temporary_name(tmp_path: Path):
    planted = tmp_path / f".out.tmp-{os.getpid()}"
    planted.mkdir()
    (planted / "theirs.txt").write_text("precious")
    with atomic_directory(tmp_path / "out") as tmp:
        StageStats("prepare").write(tmp)
    assert (planted / "theirs.txt").read_text() == "precious"
    assert (tmp_path / "out" / "stats.json").is_file()
    assert oct((tmp_path / "out").stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700


def test_the_dedup_index_lock_does_not_truncate_a_file_through_a_planted_symlink(tmp_path: Path):
    from dataprep.index import DedupIndex

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    index = tmp_path / "index"
    index.mkdir()
    planted_link(index, ".lock", victim)
    try:
        with DedupIndex(index, []).lock():
            pass
    except OSError:
        pass  # refusing the link (ELOOP) is the point
    assert victim.read_text() == "precious"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
