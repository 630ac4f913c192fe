"""Progress in a log file is plain periodic lines; in a terminal it is a redrawn bar."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOOP = """
import time
from tokenmill.progress import progress
bar = progress(range(30), desc="train", unit="step", every_s=0.05)
for step in bar:
    time.sleep(0.01)
"""


def run_loop(stderr) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", LOOP], stderr=stderr, env=env, timeout=60, check=True)


def test_piped_output_gets_plain_lines_without_redraws(tmp_path: Path):
    log = tmp_path / "demo.log"
    with open(log, "wb") as f:
        run_loop(f)
    text = log.read_text()
    assert "\r" not in text and "\x1b[" not in text, repr(text[:300])
    lines = text.splitlines()
    assert 2 <= len(lines) <= 10, lines  # one line per every_s, not one per step
    assert lines[-1].startswith("train: 30/30 step") and lines[-1].endswith("(done)")
    assert "step/s" in lines[0] and "ETA" in lines[0]


def test_a_terminal_gets_a_bar():
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # rows, columns
    try:
        run_loop(follower)
        os.close(follower)
        follower = None
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closed: all read
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
        if follower is not None:
            os.close(follower)
    text = b"".join(chunks).decode("utf-8", "replace")
    assert text.count("\r") >= 3 and "30/30" in text and "|" in text  # a bar, redrawn in place
