"""Tracking goes through the local server while `make mlflow-server` runs, else to the SQLite file."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from pipeline.tracking_server import LOCAL_STORE, effective_tracking_uri, is_loopback_http


@pytest.fixture
def listener():
    """A real socket listening on 127.0.0.1 (the check only needs something that accepts connections)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_routes_the_local_store_through_a_running_server(tmp_path: Path, listener: str):
    server_file = tmp_path / "server.url"
    server_file.write_text(listener + "\n")
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
    (tmp_path / "mlflow" / "server.url").write_text(listener)
    assert load_params().tracking.tracking_uri == listener
