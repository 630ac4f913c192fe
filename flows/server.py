"""A local Prefect server on 127.0.0.1 (`prefect server start` as a child process), for `make serve` and tests.

Unlike the temporary API a flow starts on its own, this server runs Prefect's services: schedules,
events and the triggers that turn an event into a flow run.
"""

from __future__ import annotations

import os
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
                 timeout: float = 120) -> Iterator[str]:
    """Start `prefect server start` on 127.0.0.1:`port` (its database under `home`, default
    PREFECT_HOME); yields the API URL once healthy, stops the server on exit."""
    api_url = f"http://{HOST}:{port}/api"
    if healthy(api_url):
        raise UserError(f"a Prefect server already answers on {HOST}:{port}; use it with "
                        f"PREFECT_API_URL={api_url}, or pick another --port")
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
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
