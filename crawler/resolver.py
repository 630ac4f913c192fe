"""The address guard where connections are made: the name resolver Scrapy's HTTP client connects
with (TWISTED_DNS_RESOLVER) hands it only the answers crawler.addresses allows.

A host that answers public first and private later (DNS rebinding) is checked at every connection,
since the client connects to nothing but what this resolver returned; a name that does not resolve,
or resolves only to refused addresses, gets no connection at all. Nothing is cached.

It serves the whole crawl process, for every source: what it allows a host is decided by
crawler.addresses.AddressPolicy (for a name, the strictest allowance of the sources whose scope
covers it); each request has already been checked against its own source's scope and allowance
by crawler.middlewares.AddressGuardMiddleware.
"""

from __future__ import annotations

from typing import Any

from twisted.internet._resolver import GAIResolver
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from zope.interface import implementer, provider

from crawler.addresses import POLICY, AddressPolicy


@provider(IResolutionReceiver)
class FilteringReceiver:
    """Passes on to Twisted's connecting endpoint only the addresses the policy allows."""

    def __init__(self, receiver: Any, host: str, policy: AddressPolicy):
        self.receiver, self.host, self.policy = receiver, host, policy
        self.addresses: list[Any] = []

    def resolutionBegan(self, resolution: Any) -> None:
        self.receiver.resolutionBegan(resolution)

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        allowed = set(self.policy.filter(self.host, [a.host for a in self.addresses]))
        for address in self.addresses:
            if address.host in allowed:
                self.receiver.addressResolved(address)
        self.receiver.resolutionComplete()


@implementer(IHostnameResolver)
class GuardedResolver:
    """Scrapy's TWISTED_DNS_RESOLVER: getaddrinfo in a thread (IPv4 and IPv6), no cache, every
    answer filtered by the process's AddressPolicy."""

    def __init__(self, reactor: Any, policy: AddressPolicy = POLICY, resolver: Any = None):
        self.reactor = reactor
        self.policy = policy
        self.resolver = resolver or GAIResolver(reactor)

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: Any) -> "GuardedResolver":
        return cls(reactor)

    def install_on_reactor(self) -> None:
        self.reactor.installNameResolver(self)

    def resolveHostName(self, resolutionReceiver: Any, hostName: str, portNumber: int = 0,
                        addressTypes: Any = None, transportSemantics: str = "TCP") -> Any:
        receiver = FilteringReceiver(resolutionReceiver, hostName, self.policy)
        return self.resolver.resolveHostName(receiver, hostName, portNumber, addressTypes, transportSemantics)
