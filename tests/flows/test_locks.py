"""Stage locks across processes: a second run waits for the first, and a killed run leaves no stale lock."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from pathlib import Path
from flows.locks import path_lock
with path_lock("crawl"):
    Path("held").write_text("yes")
    while not Path("release").exists():
        time.sleep(0.05)
"""


def hold_lock(cwd: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=cwd, env={"PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while not (cwd / "held").exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the holder never took the lock"
        time.sleep(0.05)
    return holder


def acquire_in_thread(cwd: Path) -> tuple[threading.Thread, threading.Event]:
    from flows.locks import path_lock

    acquired = threading.Event()

    def take() -> None:
        with path_lock("crawl", root=cwd):
            acquired.set()

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread, acquired


def test_a_second_run_waits_until_the_first_releases_the_stage(tmp_path: Path):
    holder = hold_lock(tmp_path)
    thread, acquired = acquire_in_thread(tmp_path)
    assert not acquired.wait(1.0), "took the lock while another process held it"
    (tmp_path / "release").touch()
    assert holder.wait(timeout=60) == 0
    assert acquired.wait(30)
    thread.join(5)


def test_a_killed_run_leaves_no_stale_lock(tmp_path: Path):
    holder = hold_lock(tmp_path)
    thread, acquired = acquire_in_thread(tmp_path)
    assert not acquired.wait(1.0)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert acquired.wait(30), "the lock of a killed process was released by the kernel"
    thread.join(5)
