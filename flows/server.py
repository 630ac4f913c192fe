"""A local Prefect server on 127.0.0.1 (`prefect server start` as a child process), for `make serve` and tests.

Unlike the temporary API a flow starts on its own, this server runs Prefect's services: schedules,
events and the triggers that turn an event into a flow run.

`make serve` and `make prefect` start it with an auth string (PREFECT_SERVER_API_AUTH_STRING: every API
request but the health check needs it) and CSRF protection on. The string is made once, at random, in
.prefect/auth-string (mode 0600, git-ignored); `flows.serve` hands it to its flow runs, and a `prefect`
command reads it from PREFECT_API_AUTH_STRING:
    export PREFECT_API_AUTH_STRING="$(.venv/bin/python -m flows.server auth-string)"
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tokenmill.errors import TransientError, UserError

HOST = "127.0.0.1"
AUTH_FILE = Path(".prefect") / "auth-string"


def auth_string(path: Path = AUTH_FILE) -> str:
    """The local server's auth string: made once (random, in a new file of mode 0600), then read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return read_auth_string(path)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secrets.token_urlsafe(32) + "\n")
    return read_auth_string(path)


def read_auth_string(path: Path = AUTH_FILE) -> str:
    """The auth string in `path`, refused (UserError) when others could read or have written it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)  # a symlink planted there is refused
    except OSError as exc:
        raise UserError(f"{path}: cannot read the Prefect auth string ({exc.strerror})") from None
    with os.fdopen(fd, encoding="utf-8") as f:
        status = os.fstat(f.fileno())
        text = f.read().strip()
    if status.st_mode & 0o077 or status.st_uid != os.getuid():
        raise UserError(f"{path}: the Prefect auth string is open to other users (mode {status.st_mode & 0o777:o}); "
                        f"delete the file and a new one is made")
    if len(text) < 32:
        raise UserError(f"{path}: not an auth string (too short); delete the file and a new one is made")
    return text


def server_environment(auth: str | None) -> dict[str, str]:
    """The settings that lock a local server: every request authenticated, CSRF tokens required."""
    if auth is None:
        return {}
    return {"PREFECT_SERVER_API_AUTH_STRING": auth, "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def local_server(port: int = 4200, home: Path | None = None, log: Path | None = None,
                 timeout: float = 120, auth: str | None = None) -> Iterator[str]:
    """Start `prefect server start` on 127.0.0.1:`port` (its database under `home`, default
    PREFECT_HOME); yields the API URL once healthy, stops the server on exit. With `auth`, the server
    answers only requests carrying it (server_environment)."""
    api_url = f"http://{HOST}:{port}/api"
    if healthy(api_url):
        raise UserError(f"a Prefect server already answers on {HOST}:{port}; use it with "
                        f"PREFECT_API_URL={api_url}, or pick another --port")
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.update(server_environment(auth))
    if home is not None:
        env["PREFECT_HOME"] = str(home)
    out = open(log, "ab") if log else subprocess.DEVNULL
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port",
                               str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not healthy(api_url):
            if server.poll() is not None:
                raise TransientError(f"the Prefect server exited with status {server.returncode}"
                                     + (f" (its log: {log})" if log else ""))
            if time.monotonic() > deadline:
                raise TransientError(f"the Prefect server did not answer on {api_url} within {timeout:.0f}s")
            time.sleep(0.5)
        yield api_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if log:
            out.close()


if __name__ == "__main__":  # `python -m flows.server auth-string`: print it (made on first use)
    if sys.argv[1:] != ["auth-string"]:
        sys.exit("usage: python -m flows.server auth-string")
    try:
        print(auth_string())
    except UserError as exc:
        sys.exit(f"tokenmill: error: {exc}")
