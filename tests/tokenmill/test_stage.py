"""A stage replaces only its own earlier output; anything else at the path is refused unless forced."""

from pathlib import Path

import pytest

from tokenmill.errors import UserError
from tokenmill.stage import StageStats, atomic_directory, check_replaceable, replacing_anything


def write_stage(out: Path, stage: str, text: str) -> None:
    with atomic_directory(out) as tmp:
        (tmp / "data.txt").write_text(text)
        StageStats(stage).write(tmp)


def test_replaces_its_own_earlier_output(tmp_path: Path):
    out = tmp_path / "out"
    write_stage(out, "prepare", "first")
    write_stage(out, "prepare", "second")
    assert (out / "data.txt").read_text() == "second"


def test_an_empty_directory_is_replaced(tmp_path: Path):
    (tmp_path / "out").mkdir()
    write_stage(tmp_path / "out", "prepare", "first")
    assert (tmp_path / "out" / "data.txt").read_text() == "first"


@pytest.mark.parametrize("existing", ["unrelated files", "a file", "another stage"])
def test_anything_else_is_refused_and_left_as_it_was(tmp_path: Path, existing: str):
    out = tmp_path / "out"
    if existing == "a file":
        out.write_text("precious")
    elif existing == "another stage":
        write_stage(out, "tokenize", "precious")
    else:
        out.mkdir()
        (out / "thesis.tex").write_text("precious")
    with pytest.raises(UserError, match=r"out: is .* not an earlier prepare output.*--force") as info:
        write_stage(out, "prepare", "new")
    assert "\n" not in str(info.value)
    kept = out.read_text() if out.is_file() else next(p for p in out.iterdir() if p.suffix != ".json").read_text()
    assert kept == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "the temporary output was removed"


def test_the_check_runs_before_any_work(tmp_path: Path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.md").write_text("mine")
    with pytest.raises(UserError, match="not an earlier train output"):
        check_replaceable(tmp_path / "out", "train")
    check_replaceable(tmp_path / "absent", "train")


def test_force_moves_a_foreign_directory_aside_and_replaces_a_file(tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    with replacing_anything():
        write_stage(out, "prepare", "new")
    assert sorted(p.name for p in out.iterdir()) == ["data.txt", "stats.json"]
    [aside] = tmp_path.glob("out.aside-*")
    assert (aside / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("a file may be replaced")
    with replacing_anything():
        write_stage(tmp_path / "file", "prepare", "new")
    assert (tmp_path / "file" / "data.txt").read_text() == "new"
    with pytest.raises(UserError):  # forcing ends with the block
        check_replaceable(tmp_path / "out", "tokenize")
