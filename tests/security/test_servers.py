"""The local servers: Prefect's API locked with an auth string (mode 0600) and CSRF protection;
deployments take no addresses, URIs or paths from their caller; a left-over mlflow/server.url is
used only when it names the server this checkout started."""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import stat
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from tokenmill.errors import UserError

# --- the Prefect server's auth string ---------------------------------------------------------------


def test_the_auth_string_is_made_once_in_a_file_only_its_owner_reads(tmp_path: Path):
    from flows.server import auth_string, server_environment

    path = tmp_path / ".prefect" / "auth-string"
    first = auth_string(path)
    assert len(first) >= 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert auth_string(path) == first
    assert server_environment(first) == {"PREFECT_SERVER_API_AUTH_STRING": first,
                                         "PREFECT_SERVER_CSRF_PROTECTION_ENABLED": "true"}
    path.chmod(0o644)
    with pytest.raises(UserError, match="open to other users"):
        auth_string(path)


def test_a_symlink_planted_as_the_auth_string_is_not_followed(tmp_path: Path):
    from flows.server import auth_string

    (tmp_path / "theirs").write_text("x" * 40)
    (tmp_path / "auth-string").symlink_to(tmp_path / "theirs")
    with pytest.raises(UserError, match="auth-string"):
        auth_string(tmp_path / "auth-string")


@pytest.mark.slow
def test_the_local_prefect_server_answers_only_with_the_auth_string_and_csrf_token(tmp_path: Path):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from flows.server import auth_string, free_port, local_server

    auth = auth_string(tmp_path / "auth-string")
    with local_server(free_port(), home=tmp_path / "home", auth=auth) as api_url:
        def status(method: str, path: str, headers: dict) -> int:
            request = urllib.request.Request(f"{api_url}{path}", data=b"{}" if method == "POST" else None,
                                             method=method, headers={"Content-Type": "application/json", **headers})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status
            except urllib.error.HTTPError as exc:
                return exc.code

        basic = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}
        wrong = {"Authorization": "Basic " + base64.b64encode(b"guess").decode()}
        assert status("GET", "/admin/version", {}) == 401 and status("GET", "/admin/version", wrong) == 401
        assert status("GET", "/admin/version", basic) == 200
        assert status("POST", "/flows/filter", {}) in (401, 403)
        assert status("POST", "/flows/filter", basic) == 403  # authenticated, but no CSRF token
        with temporary_settings(updates={PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}), \
                get_client(sync_client=True) as client:
            assert client.read_flows() == []  # Prefect's own client: auth string and CSRF token


# --- deployment parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize("override", [
    "prepare.dask.address=tcp://10.0.0.5:8786", "tracking.tracking_uri=http://198.51.100.7:5000",
    "tracking.artifact_location=s3://theirs", "paths.model=/home/someone", "crawl.sources=[../../etc/src]",
    "prepare.url_filter.blocklist=/etc/passwd", "finetune.base=~/model", "train.lr", "x=1"])
def test_a_deployment_refuses_an_address_uri_or_path_in_its_overrides(override: str):
    from flows.parameters import plain_overrides

    with pytest.raises(UserError) as info:
        plain_overrides([override])
    assert override in str(info.value) and "\n" not in str(info.value)


def test_a_deployment_accepts_numbers_booleans_and_plain_words():
    from flows.parameters import plain_name, plain_overrides

    fine = ["train.lr=0.001", "train.max_steps=10", "model.preset=small", "tracking.enabled=false",
            "crawl.sources=[debian-handbook]", "paths.runs=runs"]
    assert plain_overrides(fine) == fine
    assert plain_name("corpus-v3", "version") == "corpus-v3"
    for bad in ("../x", "--rev", "/etc", "a/b"):
        with pytest.raises(UserError, match="plain name"):
            plain_name(bad, "version")


def test_a_deployment_reads_params_only_from_inside_the_project(tmp_path: Path):
    from flows.parameters import project_params_path

    project = tmp_path / "project"
    project.mkdir()
    (project / "params.yaml").write_text("{}")
    (tmp_path / "other.yaml").write_text("{}")
    assert project_params_path("params.yaml", project) == "params.yaml"
    for outside in ("../other.yaml", str(tmp_path / "other.yaml"), "/etc/passwd"):
        with pytest.raises(UserError, match="inside the project"):
            project_params_path(outside, project)


def test_the_pipeline_flow_checks_a_deployment_runs_parameters_before_any_work(tmp_path, monkeypatch):
    from flows.pipeline import pipeline

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "00000000-0000-0000-0000-000000000001")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"no_such_section": {}}))  # any work would fail
    with pytest.raises(UserError, match="prepare.dask.address"):
        pipeline.fn("params.yaml", ["prepare.dask.address=tcp://10.0.0.5:8786"])
    (tmp_path.parent / "elsewhere.yaml").write_text("{}")
    with pytest.raises(UserError, match="inside the project"):
        pipeline.fn("../elsewhere.yaml")


# --- a left-over mlflow/server.url ------------------------------------------------------------------


def answering_everywhere() -> ThreadingHTTPServer:
    """Whatever took the port since: a server that says OK to /health under any path."""

    class Any(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Any)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("path", ["", "/tokenmill-" + "0" * 32])
def test_a_server_url_naming_another_server_is_ignored_with_one_line(tmp_path: Path, capsys, path: str):
    from pipeline.tracking_server import LOCAL_STORE, effective_tracking_uri, write_server_file

    server = answering_everywhere()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}{path}"
        write_server_file(url, tmp_path / "server.url")
        assert effective_tracking_uri(LOCAL_STORE, tmp_path / "server.url") == LOCAL_STORE
    finally:
        server.shutdown()
        server.server_close()
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "server.url" in line and "ignored" in line
