"""Which addresses a crawl may connect to, as pure decisions.

- `refusal`: why an address is not on the public web.
- `SourceScope`: where one source's requests may go (its domains, or a served source's exact
  origin) and which non-public addresses its `allow_private` opens. Applied to every request, by
  its source, in crawler.middlewares.AddressGuardMiddleware (schemes, hosts, ports, IP literals).
- `AddressPolicy`: the crawl process's per-host policy for names, applied where connections are
  made by crawler.resolver.GuardedResolver. A name gets the strictest allowance of the sources
  whose scope covers it; since a request reaches the resolver only inside its own source's scope,
  it is never allowed more than its own source allows."""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SCHEMES = ("http", "https")
CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 shared address space
RFC1918 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
ULA = ipaddress.ip_network("fc00::/7")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # RFC 3879 deprecated it, but networks still route it inside
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local-use translation
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d (:: and ::1 included)


def refusal(address: Address | str) -> str | None:
    """Why a crawl of the public web must not connect to `address`; None when it may."""
    address = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(address, ipaddress.IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded)
        if address in NAT64_LOCAL or (address in IPV4_COMPATIBLE and address > ipaddress.IPv6Address(1)):
            return "reserved"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:  # 169.254.0.0/16 (cloud metadata at 169.254.169.254), fe80::/10
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if address in CGNAT:
        return "cgnat"
    if any(address in net for net in RFC1918) or address in ULA or address in SITE_LOCAL:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non_public"  # documentation, benchmarking, protocol-assignment ranges
    return None


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def scheme_refusal(scheme: str) -> str | None:
    return None if scheme.lower() in SCHEMES else "scheme"


@dataclass(frozen=True)
class Allowance:
    """What a source lets through besides public addresses: everything (`allow_private: true`),
    listed networks (`allow_private: [127.0.0.1, 10.1.0.0/16]`) or nothing (false)."""

    everything: bool = False
    networks: tuple[Network, ...] = ()

    @classmethod
    def from_setting(cls, value: bool | Sequence[str]) -> "Allowance":
        if value is True:
            return cls(everything=True)
        if not value:
            return cls()
        return cls(networks=tuple(ipaddress.ip_network(v, strict=False) for v in value))

    def refusal(self, address: Address | str) -> str | None:
        address = ipaddress.ip_address(address) if isinstance(address, str) else address
        reason = refusal(address)
        if reason is None or self.everything:
            return None
        if any(address.version == net.version and address in net for net in self.networks):
            return None
        return reason


DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class SourceScope:
    """Where the requests of one source may go, and what it lets through besides public addresses.

    A source on the web: any port of a host on its `domains` or a subdomain of one (the rule of
    Scrapy's OffsiteMiddleware). A served source (`origin` set): exactly its own scheme, address
    and port. Nothing else, whatever made the request (a link, a redirect, a retry, a meta
    refresh, a sitemap, robots.txt). With no domains and no origin, nothing is in scope."""

    domains: tuple[str, ...] = ()
    origin: tuple[str, str, int] | None = None  # (scheme, host, port) of a served source
    allowance: Allowance = Allowance()
    names: tuple[str, ...] = field(init=False, repr=False)  # the domains that may have subdomains: not IPs

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(d for d in self.domains if not is_literal(d)))

    @classmethod
    def served(cls, scheme: str, host: str, port: int) -> "SourceScope":
        """A served directory: its own address and port, and that address allowed, nothing more."""
        return cls(origin=(scheme, host, port), allowance=Allowance.from_setting([host]))

    @classmethod
    def of_domains(cls, domains: Iterable[str], allow_private: bool | Sequence[str]) -> "SourceScope":
        return cls(domains=tuple(normal_host(d) for d in domains if d), allowance=Allowance.from_setting(allow_private))

    def refusal(self, scheme: str, host: str, port: int | None) -> str | None:
        """Why a request to scheme://host:port is refused: `scheme`, `out_of_scope`, or the class of
        a non-public IP literal the source did not allow (`loopback`, `private`, ...); None if not.
        A name's addresses are judged where it is resolved (crawler.resolver)."""
        scheme, host = scheme.lower(), normal_host(host)
        if scheme_refusal(scheme):
            return "scheme"
        try:
            literal: Address | None = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            literal = None
        if not self.covers(scheme, host, port if port is not None else DEFAULT_PORTS[scheme], literal is None):
            return "out_of_scope"
        return None if literal is None else self.allowance.refusal(literal)

    def covers(self, scheme: str, host: str, port: int, subdomains: bool = True) -> bool:
        """Neither an IP literal domain nor an IP literal host has subdomains."""
        if self.origin is not None:
            return (scheme, host, port) == self.origin
        return host in self.domains or (subdomains and any(host.endswith("." + d) for d in self.names))


def normal_host(host: str) -> str:
    return host.lower().strip("[]").rstrip(".")


def parse_allow_private(value: Any) -> None:
    """Raise ValueError naming the entry when `allow_private` is neither a bool nor networks."""
    if isinstance(value, bool):
        return
    for entry in value:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ValueError(f"allow_private: {entry!r} is not an IP address or network "
                             "(give true, false or a list like [127.0.0.1, 10.1.0.0/16])") from None


@dataclass
class AddressPolicy:
    """Per host: what the process's resolver lets a connection reach. Hosts that no source allows
    anything private for get public addresses only (fail closed). `domains` maps a domain (and its
    subdomains) to an Allowance; a name under several gets the strictest, so one source cannot open
    another's (the resolver cannot tell which source a connection is for). `literals` maps an IP
    literal to the loosest allowance of the sources naming it: the address guard has already
    decided each request for a literal by its own source, and this refuses what none allows."""

    domains: dict[str, Allowance] = field(default_factory=dict)
    literals: dict[str, Allowance] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)  # host -> reason of its last refused answer
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def allowance(self, host: str) -> Allowance:
        host = normal_host(host)
        if host in self.literals:
            return self.literals[host]
        matches = [a for d, a in self.domains.items() if host == d or host.endswith("." + d)]
        return strictest(matches) if matches else Allowance()

    def filter(self, host: str, addresses: Iterable[str]) -> list[str]:
        """The addresses of `host` that may be connected to; records why others were refused."""
        allowance, allowed, reason = self.allowance(host), [], None
        for address in addresses:
            try:
                why = allowance.refusal(address.split("%")[0])
            except ValueError:
                why = "unparsable"
            if why is None:
                allowed.append(address)
            else:
                reason = reason or why
        with self.lock:
            if allowed:
                self.refused.pop(host, None)
            elif reason is not None:
                self.refused[host] = reason
        return allowed

    def refusal_of(self, host: str) -> str | None:
        """Why the last resolution of `host` gave nothing to connect to (None: it did not resolve)."""
        with self.lock:
            return self.refused.get(host)

    @classmethod
    def from_sources(cls, entries: Iterable[tuple[Iterable[str], bool | Sequence[str]]]) -> "AddressPolicy":
        """From (hosts, allow_private) of each source."""
        policy = cls()
        collected: dict[str, list[Allowance]] = {}
        for hosts, allow_private in entries:
            allowance = Allowance.from_setting(allow_private)
            for host in hosts:
                collected.setdefault(normal_host(host), []).append(allowance)
        policy.domains = {host: strictest(allowances) for host, allowances in collected.items() if not is_literal(host)}
        policy.literals = {host: loosest(allowances) for host, allowances in collected.items() if is_literal(host)}
        return policy

    def use(self, other: "AddressPolicy") -> None:
        """Take `other`'s hosts (the process's POLICY, which its resolver already holds)."""
        self.domains, self.literals = other.domains, other.literals


def strictest(allowances: list[Allowance]) -> Allowance:
    if all(a.everything for a in allowances):
        return Allowance(everything=True)
    restricted = [a for a in allowances if not a.everything]
    networks = set(restricted[0].networks)
    for other in restricted[1:]:
        networks &= set(other.networks)
    return Allowance(networks=tuple(sorted(networks, key=str)))


def loosest(allowances: list[Allowance]) -> Allowance:
    if any(a.everything for a in allowances):
        return Allowance(everything=True)
    return Allowance(networks=tuple(sorted({n for a in allowances for n in a.networks}, key=str)))


def is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    return True


POLICY = AddressPolicy()  # the crawl process's policy: one resolver per process (see crawler.job)
