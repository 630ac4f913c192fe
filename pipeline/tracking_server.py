"""Log through the local MLflow tracking server when `make mlflow-server` runs, else to the SQLite file.

SQLite must not be written by many processes at once: parallel trainings and sweeps go through one
server in front of the store. `make mlflow-server` (`python -m pipeline.tracking_server`) starts that
server under a random path, `http://127.0.0.1:PORT/tokenmill-<nonce>` (MLflow's --static-prefix), and
writes that URL to mlflow/server.url (a new file, mode 0600) while it runs. A params tracking URI
naming the store that server fronts is then routed to it, provided
  - the address is on this machine (127.0.0.1/localhost) and answers,
  - server.url is this user's and readable by nobody else,
  - the server answers /health under the nonce path, and not under another random one: it is the
    server this checkout started, not whatever took the port since (a left-over server.url).
A stale file (server gone) changes nothing; a file naming another server is ignored with one line.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

SERVER_FILE = Path("mlflow") / "server.url"  # written by `make mlflow-server` while it runs
LOCAL_STORE = "sqlite:///mlflow/mlflow.db"  # the store `make mlflow-server` fronts
LOOPBACK = ("127.0.0.1", "localhost", "::1")
NONCE_PATH = re.compile(r"/tokenmill-[0-9a-f]{32}")
_warned: set[str] = set()


def effective_tracking_uri(configured: str, server_file: Path = SERVER_FILE) -> str:
    """`configured`, or the running local server's URL when `configured` is the store it fronts."""
    if configured != LOCAL_STORE or not server_file.is_file():
        return configured
    url = server_file.read_text(encoding="utf-8").strip()
    if not is_local_and_listening(url):
        return configured
    problem = not_started_here(url, server_file)
    if problem is None:
        return url
    if str(server_file) not in _warned:  # once a process: params are loaded many times
        _warned.add(str(server_file))
        print(f"tokenmill: {server_file}: ignored ({problem}); tracking to {configured}", file=sys.stderr)
    return configured


def is_loopback_http(url: str) -> bool:
    """`url` is http on the loopback interface, with a port (decided without any traffic)."""
    parts = urlsplit(url)
    return parts.scheme == "http" and parts.hostname in LOOPBACK and parts.port is not None


def is_local_and_listening(url: str, timeout_s: float = 0.5) -> bool:
    """True when `url` is http on the loopback interface and something accepts connections there."""
    if not is_loopback_http(url):
        return False
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout_s):
            return True
    except OSError:
        return False


def not_started_here(url: str, server_file: Path) -> str | None:
    """Why the server at `url` is not the one `make mlflow-server` started in this checkout (None: it is)."""
    status = server_file.lstat()
    if server_file.is_symlink() or status.st_uid != os.getuid() or status.st_mode & 0o077:
        return "not a file of mode 0600 of this user"
    parts = urlsplit(url)
    if not NONCE_PATH.fullmatch(parts.path):
        return "no nonce in the URL: not written by `make mlflow-server`"
    origin = f"{parts.scheme}://{parts.netloc}"
    if not answers_health(url) or answers_health(f"{origin}/tokenmill-{secrets.token_hex(16)}"):
        return f"the server on {origin} does not answer to this checkout's nonce"
    return None


def answers_health(base: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout_s) as response:
            return response.status == 200 and response.read(16).strip() == b"OK"
    except OSError:
        return False


def write_server_file(url: str, server_file: Path = SERVER_FILE) -> None:
    """server.url as a new file of mode 0600 (a left-over one, or a planted symlink, is replaced, not
    followed)."""
    server_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = server_file.with_name(f".{server_file.name}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(url + "\n")
    os.replace(tmp, server_file)


def server_command(port: int, store: str, artifacts: str, prefix: str) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host", "127.0.0.1",
            "--port", str(port), "--workers", "1", "--no-serve-artifacts", "--default-artifact-root", artifacts,
            "--static-prefix", prefix]


def main(argv: list[str] | None = None) -> int:
    """`make mlflow-server`: the MLflow server under a fresh nonce path, server.url while it runs."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.tracking_server", description=main.__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--store", default=LOCAL_STORE)
    parser.add_argument("--artifacts", default="./mlflow/artifacts")
    args = parser.parse_args(argv)
    prefix = f"/tokenmill-{secrets.token_hex(16)}"
    url = f"http://127.0.0.1:{args.port}{prefix}"
    Path(args.artifacts).mkdir(parents=True, exist_ok=True)
    write_server_file(url)
    print(f"MLflow tracking server and UI on {url}/ (Ctrl-C to stop)", flush=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the server and remove the file on a kill too
    # Its own session: a terminal's Ctrl-C reaches only this process, which stops the server (and its
    # uvicorn) with SIGTERM; a SIGINT of its own made uvicorn print a traceback when it was starting up.
    server = subprocess.Popen(server_command(args.port, args.store, args.artifacts, prefix), env=env,
                              start_new_session=True)
    try:
        return server.wait()
    except KeyboardInterrupt:
        print("MLflow tracking server stopped", flush=True)
        return 0  # Ctrl-C is how it is stopped
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while it stops: no traceback either
        SERVER_FILE.unlink(missing_ok=True)
        stop(server)


def stop(server: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """SIGTERM to the server's process group (the mlflow command and its uvicorn); SIGKILL to whatever
    of it is left after `timeout_s`."""
    _signal_group(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _signal_group(server.pid, 0):
        server.poll()  # reap the mlflow command, or the group never looks empty
        time.sleep(0.1)
    _signal_group(server.pid, signal.SIGKILL)
    server.wait()


def _signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to the process group; False when none of it is left."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False


if __name__ == "__main__":
    sys.exit(main())
