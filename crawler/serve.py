"""A local directory on real HTTP at 127.0.0.1, for the duration of a crawl: its files and nothing
else (no directory listings, no file reached through a symlink that leads out of the directory)."""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

INDEXES = ("index.html", "index.htm")  # what a directory URL (ending in /) serves, as http.server does


class QuietHandler(SimpleHTTPRequestHandler):
    # persistent connections, as web servers keep them: a crawl of a served site does not pay a TCP
    # connection, a resolver round and a server thread per page (every answer has a Content-Length)
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # the crawler logs what it fetches
        pass

    def translate_path(self, path: str) -> str:
        """The file a URL path names; for a directory URL ending in /, its index file (so that the
        check below applies to the file that is opened)."""
        translated = super().translate_path(path)
        if urlsplit(path).path.endswith("/") and os.path.isdir(translated):
            for index in INDEXES:
                if os.path.exists(os.path.join(translated, index)):
                    return os.path.join(translated, index)
        return translated

    def send_head(self) -> Any:
        if not inside(os.path.realpath(self.translate_path(self.path)), os.path.realpath(self.directory)):
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")  # as if it did not exist
            return None
        return super().send_head()

    def list_directory(self, path: str) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "File not found")
        return None


def inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def bind(directory: Path, port: int) -> ThreadingHTTPServer:
    """A server for `directory` on `port` if that is free, else on a free one (port 0)."""
    handler = partial(QuietHandler, directory=str(directory))
    try:
        return ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError:
        if port == 0:
            raise
        return ThreadingHTTPServer(("127.0.0.1", 0), handler)


@contextmanager
def serve_directory(directory: Path, port: int = 0) -> Iterator[int]:
    """Serve `directory` in a background thread; yields the port actually bound."""
    server = bind(directory, port)
    # a short poll: shutdown() waits for the loop to notice (0.5 s by default, at the end of every crawl)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"serve {directory}",
                              daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
