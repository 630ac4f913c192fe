"""A scriptable web server on 127.0.0.1 for politeness and guard tests: each path answers what a
route function says, and every request is recorded with the server's own clock."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from .conftest import page

Answer = tuple[int, dict[str, str], bytes]  # status, headers, body
Route = Callable[[int], Answer]  # called with how many times the path was asked for before


@dataclass(frozen=True)
class Hit:
    at: float  # time.monotonic() on the server when the request arrived
    host: str  # the Host header
    path: str
    headers: dict[str, str]


def html(title: str, links: list[str] = (), status: int = 200, **headers: str) -> Route:
    body = page(title, list(links)).encode("utf-8")
    return lambda n: (status, {"Content-Type": "text/html; charset=utf-8", **headers}, body)


def text(body: str, status: int = 200) -> Route:
    return lambda n: (status, {"Content-Type": "text/plain"}, body.encode("utf-8"))


def redirect(location: str) -> Route:
    return lambda n: (302, {"Location": location}, b"")


def sequence(*routes: Route) -> Route:
    """The first route on the first request, the second on the second, ..., the last from then on."""
    return lambda n: routes[min(n, len(routes) - 1)](n)


class HostileServer:
    def __init__(self, routes: dict[str, Route], host: str = "127.0.0.1"):
        assert host.startswith("127."), "test servers listen on loopback only"
        self.routes = routes
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?")[0]
                with server.lock:
                    count = sum(1 for h in server.hits if h.path == path)
                    server.hits.append(Hit(time.monotonic(), self.headers.get("Host", ""), path,
                                           dict(self.headers.items())))
                route = server.routes.get(path)
                status, headers, body = route(count) if route else (404, {"Content-Type": "text/plain"}, b"no")
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def paths(self) -> list[str]:
        with self.lock:
            return [h.path for h in self.hits]

    def times(self, path_prefix: str = "/", host: str | None = None) -> list[float]:
        with self.lock:
            return [h.at for h in self.hits if h.path.startswith(path_prefix)
                    and (host is None or h.host.split(":")[0] == host)]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self) -> "HostileServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
