"""Tracking goes through the local server while `make mlflow-server` runs, else to the SQLite file."""

from __future__ import annotations

import secrets
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.tracking_server import LOCAL_STORE, effective_tracking_uri, is_loopback_http, write_server_file


def health_server(answers: str | None):
    """An HTTP server on 127.0.0.1 that says OK on `answers`/health (None: on every path), like
    `mlflow server --static-prefix` does on its prefix; 404 elsewhere."""

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            ok = self.path == f"{answers}/health" if answers is not None else self.path.endswith("/health")
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"OK" if ok else b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def listener():
    """A server started as `make mlflow-server` starts it: it answers under its nonce path."""
    prefix = f"/tokenmill-{secrets.token_hex(16)}"
    server = health_server(prefix)
    yield f"http://127.0.0.1:{server.server_address[1]}{prefix}"
    server.shutdown()
    server.server_close()


def test_routes_the_local_store_through_a_running_server(tmp_path: Path, listener: str):
    server_file = tmp_path / "server.url"
    write_server_file(listener, server_file)
    assert effective_tracking_uri(LOCAL_STORE, server_file) == listener
    # another store, or an explicit server, is left as configured
    assert effective_tracking_uri("sqlite:///elsewhere.db", server_file) == "sqlite:///elsewhere.db"
    assert effective_tracking_uri("http://127.0.0.1:1/", server_file) == "http://127.0.0.1:1/"


def test_a_stale_server_file_changes_nothing(tmp_path: Path, listener: str):
    server_file = tmp_path / "server.url"
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server_file.write_text(f"http://127.0.0.1:{port}")
    assert effective_tracking_uri(LOCAL_STORE, server_file) == LOCAL_STORE
    assert effective_tracking_uri(LOCAL_STORE, tmp_path / "absent.url") == LOCAL_STORE


@pytest.mark.parametrize("url", ["http://10.1.2.3:5000", "http://192.168.0.2:5000", "http://example.org:5000",
                                 "https://127.0.0.1:5000", "http://127.0.0.1"])
def test_only_loopback_http_addresses_are_used(url: str):
    """A pure decision (no connection is tried here, whatever the code does): only http on loopback
    with a port is ever connected to."""
    assert not is_loopback_http(url)


def test_load_params_uses_the_running_server(tmp_path: Path, listener: str, monkeypatch: pytest.MonkeyPatch):
    from pipeline.params import load_params

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlflow").mkdir()
    assert load_params().tracking.tracking_uri == LOCAL_STORE
    write_server_file(listener, tmp_path / "mlflow" / "server.url")
    assert load_params().tracking.tracking_uri == listener


# A stand-in for `mlflow server` and its uvicorn: a Python process with a child of its own, both asleep;
# a SIGINT of their own prints a KeyboardInterrupt traceback, as uvicorn's did when Ctrl-C caught it starting.
FAKE_SERVER = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
               "print('serving', flush=True); time.sleep(600)")


def test_ctrl_c_stops_the_server_quietly(tmp_path: Path):
    """`make ui` then Ctrl-C (SIGINT to the terminal's whole foreground group): one line, exit 0, no
    traceback, server.url removed, nothing of the server left running."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    root = Path(__file__).resolve().parents[2]
    script = ("import sys; from pipeline import tracking_server as t; "
              f"t.server_command = lambda *a: [sys.executable, '-c', {FAKE_SERVER!r}]; "
              "sys.exit(t.main(['--port', '1', '--artifacts', 'artifacts']))")
    env = {**os.environ, "PYTHONPATH": str(root)}
    # SIGINT as a terminal's foreground job has it (a shell's background job, e.g. a suite run with `&`,
    # inherits it ignored, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert lines[1].strip() == "serving", lines
        deadline = time.monotonic() + 30
        while len(server := psutil.Process(proc.pid).children(recursive=True)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(server) == 2 and (tmp_path / "mlflow" / "server.url").is_file()
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert out.strip() == "MLflow tracking server stopped" and proc.returncode == 0
    assert not (tmp_path / "mlflow" / "server.url").exists()
    time.sleep(0.2)
    assert not [p for p in server if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
