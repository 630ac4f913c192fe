"""The JOBDIR's request queues: Scrapy's PickleFifoDiskQueue, written to disk only when it must be.

Scrapy keeps one disk queue per request priority, that is per depth in a breadth-first crawl: each
is a directory made when a request of that depth is queued and removed when the last one is taken,
with its files written and read for every request. On a site a few pages wide and many deep that
is hundreds of directories made and removed, several milliseconds of the reactor's thread per page.

Yet the queue on disk is only ever read after a graceful stop: a crawl killed outright leaves its
JOBDIR marked untrusted and the next run rebuilds the frontier from pages.jsonl instead
(crawler.state.CrawlState.prepare_run). So this queue keeps its requests in memory, serialised
exactly as Scrapy's (a request that cannot be pickled is refused with ValueError, as there, and
Scrapy falls back to its memory queue), and writes them on close(), in the files Scrapy's
PickleFifoDiskQueue reads and writes. Beyond MEMORY_ITEMS requests it spills to those files at
once, so that a huge frontier does not live in memory; FIFO order holds throughout (every request
in memory is older than every request on disk).
"""

from __future__ import annotations

import pickle
import shutil
from collections import deque
from pathlib import Path
from typing import Any

from queuelib.queue import FifoDiskQueue
from scrapy.http import Request
from scrapy.http.request import _find_method
from scrapy.utils.request import request_from_dict


class BufferedPickleFifoDiskQueue:
    """SCHEDULER_DISK_QUEUE (and SCHEDULER_START_DISK_QUEUE): see the module's docstring."""

    MEMORY_ITEMS = 10_000  # requests held in memory, per priority, before spilling to disk

    def __init__(self, crawler: Any, key: str):
        self.spider = crawler.spider
        self.path = Path(key)
        self.memory: deque[bytes] = deque()
        # a queue saved by an earlier run's graceful stop (its requests are older than any pushed now)
        self.disk: FifoDiskQueue | None = self.open_disk() if (self.path / "info.json").exists() else None

    @classmethod
    def from_crawler(cls, crawler: Any, key: str, *args: Any, **kwargs: Any) -> "BufferedPickleFifoDiskQueue":
        return cls(crawler, key)

    def open_disk(self) -> FifoDiskQueue:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FifoDiskQueue(self.path)

    def push(self, request: Request) -> None:
        data = serialise(request_dict(request, self.spider))
        if self.disk is None and len(self.memory) < self.MEMORY_ITEMS:
            self.memory.append(data)
            return
        if self.disk is None:
            self.disk = self.open_disk()
        self.disk.push(data)

    def pop(self) -> Request | None:
        data = self.pop_data()
        return request_from_dict(pickle.loads(data), spider=self.spider) if data else None

    def pop_data(self) -> bytes | None:
        if self.memory:
            return self.memory.popleft()
        if self.disk is not None:
            data = self.disk.pop()
            if not len(self.disk):  # drained: later pushes go to memory again
                self.disk.close()
                self.disk = None
            return data
        return None

    def peek(self) -> Request | None:
        data = self.memory[0] if self.memory else (self.disk.peek() if self.disk is not None else None)
        return request_from_dict(pickle.loads(data), spider=self.spider) if data else None

    def close(self) -> None:
        """Leave on disk what is still queued (nothing at all when it is empty)."""
        if not self.memory:
            if self.disk is not None:
                self.disk.close()  # removes its files when empty
            return
        if self.disk is None:
            self.disk = self.open_disk()
            for data in self.memory:
                self.disk.push(data)
            self.disk.close()
            return
        # the requests in memory go before those that spilled: write them first, then copy the rest
        self.disk.close()
        spilled = self.path.with_name(self.path.name + ".spilled")
        shutil.rmtree(spilled, ignore_errors=True)
        self.path.rename(spilled)
        older, queue = FifoDiskQueue(spilled), FifoDiskQueue(self.path)
        for data in self.memory:
            queue.push(data)
        while (data := older.pop()) is not None:
            queue.push(data)
        queue.close()
        older.close()
        shutil.rmtree(spilled, ignore_errors=True)

    def __len__(self) -> int:
        return len(self.memory) + (len(self.disk) if self.disk is not None else 0)


def request_dict(request: Request, spider: Any) -> dict[str, Any]:
    """request.to_dict(spider=spider), but a callback that is the spider's method of its own name is
    found at once: Scrapy's search lists all of the spider's members, twice per request."""
    d = {"url": request.url, "callback": method_name(spider, request.callback),
         "errback": method_name(spider, request.errback), "headers": dict(request.headers)}
    for attr in request.attributes:
        d.setdefault(attr, getattr(request, attr))
    if type(request) is not Request:
        d["_class"] = request.__module__ + "." + request.__class__.__name__
    return d


def method_name(spider: Any, func: Any) -> Any:
    if not callable(func):
        return func
    function = getattr(func, "__func__", None)
    name = getattr(function, "__name__", None)
    if spider and name and getattr(getattr(spider, name, None), "__func__", None) is function:
        return name
    return _find_method(spider, func)  # Scrapy's search, and its ValueError


def serialise(request_dict: dict[str, Any]) -> bytes:
    """As scrapy.squeues' pickle serialisation: what cannot be pickled raises ValueError."""
    try:
        return pickle.dumps(request_dict, protocol=4)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise ValueError(str(e)) from e
