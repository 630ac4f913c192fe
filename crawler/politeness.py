"""Per-host politeness on Scrapy's downloader slots (one slot per host): a delay floor from
robots.txt Crawl-delay that AutoThrottle may raise but never lower, and pauses for Retry-After
that hold back one host while the others go on."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from scrapy.extensions.throttle import AutoThrottle
from scrapy.http import Request
from scrapy.utils.asyncio import call_later


def retry_after_seconds(value: str, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value: delay-seconds or an HTTP date (RFC 9110 §10.2.3);
    None when absent or unreadable."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class HostDelays:
    """The politeness state of one crawler's hosts (downloader slots)."""

    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.floors: dict[str, float] = {}  # slot key -> Crawl-delay
        self.strikes: dict[str, int] = {}  # slot key -> 429/503 answers in a row

    def slot(self, request: Request) -> tuple[str, Any]:
        return self.crawler.engine.downloader._get_slot(request)

    def set_floor(self, request: Request, delay: float) -> None:
        key, slot = self.slot(request)
        self.floors[key] = delay
        slot.delay = max(slot.delay, delay)
        slot.jitter = 0.0  # a floor is a floor: no random shortening

    def floor(self, key: str) -> float:
        return self.floors.get(key, 0.0)

    def answered(self, request: Request) -> None:
        key = request.meta.get("download_slot")
        if key is not None:
            self.strikes.pop(key, None)

    def pause(self, request: Request, seconds: float | None, cap: float) -> float:
        """Hold the host's slot for `seconds` (or an exponential backoff), at most `cap`."""
        key, slot = self.slot(request)
        strikes = self.strikes[key] = self.strikes.get(key, 0) + 1
        if seconds is None:
            seconds = max(slot.delay, 1.0) * 2 ** (strikes - 1)
        seconds = min(seconds, cap)
        downloader = self.crawler.engine.downloader
        if slot.latercall is not None:  # a shorter wait already scheduled: replace it
            slot.latercall.cancel()
        slot.latercall = call_later(seconds, downloader._latercall, slot)
        return seconds


def host_delays(crawler: Any) -> HostDelays:
    delays = getattr(crawler, "_tokenmill_host_delays", None)
    if delays is None:
        delays = crawler._tokenmill_host_delays = HostDelays(crawler)
    return delays


class PoliteThrottle(AutoThrottle):
    """AutoThrottle that never takes a host's delay under its robots.txt Crawl-delay."""

    def _adjust_delay(self, slot: Any, latency: float, response: Any) -> None:
        super()._adjust_delay(slot, latency, response)
        key = response.request.meta.get("download_slot") if response.request is not None else None
        if key is not None:
            slot.delay = max(slot.delay, host_delays(self.crawler).floor(key))
