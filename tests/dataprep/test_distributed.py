"""prepare on Dask: a LocalCluster of 2 worker processes, and a real `dask scheduler` + 2 `dask worker`
processes on 127.0.0.1, must write exactly the bytes a run in this process writes."""

import json
import os
import subprocess
import sys
import time

import pytest
from dataprep_samples import ENGLISH, ENGLISH_OTHER, GERMAN, PERSIAN, POLISH

from dataprep.config import PrepareConfig
from dataprep.pipeline import run

LONG = ENGLISH + "\n\n" + ENGLISH_OTHER
SHARDS = [
    [{"id": "en", "text": ENGLISH + "\n\nWrite to jan@example.org.", "site": "a"},
     {"id": "fa", "text": PERSIAN, "lang": "fa-IR"},
     {"id": "de", "text": GERMAN}],
    [{"id": "copy", "text": ENGLISH_OTHER, "site": "a"},
     {"id": "pl", "text": POLISH},
     {"id": "near", "text": LONG.replace("volunteers", "people"), "site": "e"}],
    [{"id": "copy-2", "text": ENGLISH_OTHER.replace("  ", " "), "site": "b"},  # exact copy across shards
     {"id": "long", "text": LONG},  # the near copy's original, in another shard
     {"id": "fa-2", "text": PERSIAN + " " + PERSIAN[:40]}],
]


def write_shards(directory):
    directory.mkdir()
    for number, records in enumerate(SHARDS):
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        (directory / f"shard-{number}.jsonl").write_text(lines, encoding="utf-8")
    return directory


def tree_bytes(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_two_local_workers_write_the_same_bytes_as_one(tmp_path):
    inp = write_shards(tmp_path / "in")
    config = PrepareConfig(shard_size=2)
    one = run(inp, tmp_path / "one", config)
    config.dask.workers = 2
    two = run(inp, tmp_path / "two", config)
    assert one == two
    assert tree_bytes(tmp_path / "one") == tree_bytes(tmp_path / "two")
    assert one["removed"]["exact_dedup"] == 1 and one["removed"]["near_dedup"] == 2  # found across shards
    assert one["documents_in"] == 9 and one["pii_replaced"]["email"] == 1


@pytest.mark.slow
def test_a_real_scheduler_and_two_workers_write_the_same_bytes(tmp_path):
    inp = write_shards(tmp_path / "in")
    local = run(inp, tmp_path / "local", PrepareConfig())
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    common = ["--no-dashboard"]
    started = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                 "--scheduler-file", str(scheduler_file), *common], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            started.append(subprocess.Popen(
                [sys.executable, "-m", "dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1",
                 "--nworkers", "1", "--local-directory", str(tmp_path / "dask"), *common],
                env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from dask.distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            assert len(client.scheduler_info()["workers"]) == 2
        config = PrepareConfig()
        config.dask.address = address  # prepare.dask.address
        remote = run(inp, tmp_path / "remote", config)
        with Client(address, timeout=60) as client:  # the tasks ran there
            prefixes = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
        assert any(p.startswith("tokenmill") for p in prefixes), prefixes
        assert remote == local
        assert tree_bytes(tmp_path / "remote") == tree_bytes(tmp_path / "local")
    finally:
        for process in reversed(started):
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_task_counts_add_up_and_int_settings_stay_as_they_are():
    from collections import Counter

    from dataprep.distributed import counts_of, merge_counts
    from dataprep.step import Step

    class Windowed(Step):
        name = "windowed"

        def __init__(self):
            super().__init__()
            self.window = 5  # a setting
            self.changed = 0  # a count
            self.per_lang: Counter = Counter()

    driver, fresh = Windowed(), counts_of(Windowed())
    for changed in (2, 3, 4):
        task = Windowed()
        task.changed, task.documents_in = changed, 10
        task.removed["short"] += 1
        task.per_lang.update(en=changed)
        merge_counts(driver, counts_of(task), fresh)
    assert driver.window == 5  # was 15: every task's setting was added
    assert (driver.changed, driver.documents_in, driver.removed, driver.per_lang) == (9, 30, {"short": 3}, {"en": 9})
