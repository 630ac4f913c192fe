"""`tokenmill prepare` killed (SIGKILL to its whole process group) and run again with the same command
continues from the tasks it finished and writes exactly the bytes of an uninterrupted run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from dataprep_samples import ENGLISH, ENGLISH_OTHER, GERMAN, PERSIAN, POLISH

TEXTS = [ENGLISH, ENGLISH_OTHER, GERMAN, PERSIAN, POLISH]


def write_corpus(directory, shards=6):
    """Shards of real-sounding text in several languages, with exact and near copies across shards."""
    directory.mkdir()
    for shard in range(shards):
        with open(directory / f"shard-{shard}.jsonl", "w", encoding="utf-8") as f:
            for i, text in enumerate(TEXTS):
                variant = text if (shard + i) % 3 else text.replace(" the ", " a ", 1) + f" Note {shard}-{i}."
                record = {"id": f"s{shard}-{i}", "text": variant + f"\n\nWrite to user{i}@example.org."}
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return directory


def tree_bytes(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def prepare(inp, out, *extra):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "pipeline.cli", "prepare", "--in", str(inp), "--out", str(out), *extra]
    return subprocess.Popen(command, env=env, cwd=out.parent, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def kill_when(process, path, timeout=120):
    """SIGKILL the process group as soon as `path` exists; True if it was killed before it finished."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return True


def finish(process):
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]


def markers(work):
    return {p: p.stat().st_mtime_ns for p in work.rglob("done-*.json")}


def test_prepare_killed_twice_resumes_from_its_finished_tasks_and_writes_the_same_bytes(tmp_path):
    inp = write_corpus(tmp_path / "in")
    steps = ("--steps", "normalize,exact_dedup,near_dedup,pii")
    finish(prepare(inp, tmp_path / "whole", *steps))
    out, work = tmp_path / "resumed", tmp_path / ".resumed.prepare-work"
    assert kill_when(prepare(inp, out, *steps), work / "segment-0" / "done-00002.json")  # in the first segment
    done = markers(work)
    assert kill_when(prepare(inp, out, *steps), work / "segment-1" / "done-00001.json")  # in pass two
    assert not out.exists()
    assert all(markers(work)[p] == mtime for p, mtime in done.items())  # finished tasks were not run again
    assert len(markers(work)) >= 6 + 2  # the first segment's six tasks and two of the last
    finish(prepare(inp, out, *steps))
    assert tree_bytes(out) == tree_bytes(tmp_path / "whole")
    assert not work.exists()


@pytest.mark.slow
def test_prepare_on_dask_killed_resumes_and_writes_the_same_bytes(tmp_path):
    inp = write_corpus(tmp_path / "in")
    finish(prepare(inp, tmp_path / "whole"))
    out, work = tmp_path / "resumed", tmp_path / ".resumed.prepare-work"
    # the whole process group: the driver, the local cluster's nannies and its two workers
    assert kill_when(prepare(inp, out, "--workers", "2"), work / "segment-0" / "done-00001.json")
    finish(prepare(inp, out, "--workers", "2"))
    assert tree_bytes(out) == tree_bytes(tmp_path / "whole")
