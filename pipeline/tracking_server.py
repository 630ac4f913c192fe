"""Log through the local MLflow tracking server when `make mlflow-server` runs, else to the SQLite file.

SQLite must not be written by many processes at once: parallel trainings and sweeps go through one
server in front of the store. `make mlflow-server` writes its address to mlflow/server.url while it
runs; a params tracking URI naming the store that server fronts is then routed to it, provided the
address is on this machine (127.0.0.1/localhost) and answers. A stale file (server gone) changes nothing.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

SERVER_FILE = Path("mlflow") / "server.url"  # written by `make mlflow-server` while it runs
LOCAL_STORE = "sqlite:///mlflow/mlflow.db"  # the store `make mlflow-server` fronts
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def effective_tracking_uri(configured: str, server_file: Path = SERVER_FILE) -> str:
    """`configured`, or the running local server's URL when `configured` is the store it fronts."""
    if configured != LOCAL_STORE or not server_file.is_file():
        return configured
    url = server_file.read_text(encoding="utf-8").strip()
    return url if is_local_and_listening(url) else configured


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
