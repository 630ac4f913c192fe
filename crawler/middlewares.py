"""Downloader middleware: keep a crawl of the public web off the machine's own networks.

Staying on `allowed_domains` is Scrapy's OffsiteMiddleware's job (enabled by default, fed by the
spider's `allowed_domains`); this one resolves each host and refuses loopback, private, link-local
and other non-public addresses unless the source says `allow_private: true`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

from scrapy.exceptions import IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class PrivateAddressRefused(IgnoreRequest):
    """The request's host is (or resolves to) an address that is not on the public internet."""


def is_public(address: Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


class PrivateAddressMiddleware:
    def __init__(self, crawler: Any):
        self.crawler = crawler
        self.addresses: dict[str, list[Address]] = {}  # host -> its addresses, resolved once

    @classmethod
    def from_crawler(cls, crawler: Any) -> "PrivateAddressMiddleware":
        return cls(crawler)

    async def process_request(self, request: Any) -> None:
        if self.crawler.spider.source.allow_private:
            return None
        host = urlparse_cached(request).hostname or ""
        refused = [a for a in await self.resolve(host) if not is_public(a)]
        if refused:
            self.crawler.stats.inc_value("tokenmill/refused_private")
            raise PrivateAddressRefused(
                f"refused {request.url}: {host} is {refused[0]}, not a public address "
                "(set allow_private: true in the source to crawl it)"
            )
        return None

    async def resolve(self, host: str) -> list[Address]:
        if host not in self.addresses:
            self.addresses[host] = await resolve(host)
        return self.addresses[host]


async def resolve(host: str) -> list[Address]:
    """The host's addresses; [] when it does not resolve (the download then fails and says so)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}, key=str)
