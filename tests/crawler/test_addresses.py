"""The address decision as a pure function, and the resolver's filtering with scripted answers.
Nothing here opens a connection: non-loopback ranges are only ever decided, never contacted."""

import pytest
from twisted.internet.address import IPv4Address, IPv6Address

from crawler.addresses import Allowance, AddressPolicy, SourceScope, refusal, scheme_refusal
from crawler.resolver import GuardedResolver


@pytest.mark.parametrize("address, reason", [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("172.31.255.255", "private"), ("192.168.1.1", "private"),
    ("169.254.169.254", "link_local"), ("169.254.0.1", "link_local"), ("fe80::1", "link_local"),
    ("100.64.0.1", "cgnat"), ("100.127.255.254", "cgnat"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.1", "multicast"), ("239.255.255.250", "multicast"), ("ff02::1", "multicast"),
    ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("192.0.2.1", "non_public"), ("198.18.0.1", "non_public"),
    # IPv4-mapped, NAT64 (RFC 6052), 6to4 and IPv4-compatible forms of the same places
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:10.0.0.1", "private"), ("::ffff:169.254.169.254", "link_local"),
    ("64:ff9b::7f00:1", "loopback"), ("64:ff9b::a9fe:a9fe", "link_local"), ("64:ff9b::c0a8:101", "private"),
    ("64:ff9b:1::1", "reserved"), ("2002:7f00:1::", "loopback"), ("2002:a00:1::", "private"),
    ("::7f00:1", "reserved"), ("::a00:1", "reserved"),
])
def test_non_public_addresses_are_refused_with_their_reason(address, reason):
    assert refusal(address) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808", "100.128.0.1", "172.32.0.1"])
def test_public_addresses_pass(address):
    assert refusal(address) is None


def test_schemes():
    assert scheme_refusal("http") is None and scheme_refusal("HTTPS") is None
    assert {scheme_refusal(s) for s in ("file", "ftp", "data", "gopher", "s3")} == {"scheme"}


def test_an_allowance_opens_only_what_it_lists():
    assert Allowance.from_setting(True).refusal("10.0.0.1") is None
    assert Allowance.from_setting(False).refusal("127.0.0.1") == "loopback"
    listed = Allowance.from_setting(["127.0.0.1", "10.1.0.0/16"])
    assert listed.refusal("127.0.0.1") is None and listed.refusal("10.1.200.3") is None
    assert listed.refusal("127.0.0.2") == "loopback" and listed.refusal("10.2.0.1") == "private"
    assert listed.refusal("169.254.169.254") == "link_local" and listed.refusal("8.8.8.8") is None


def test_policy_matches_subdomains_and_takes_the_strictest():
    policy = AddressPolicy.from_sources([(["intranet.example"], True), (["example.org"], ["10.0.0.0/8"]),
                                         (["example.org"], ["10.0.0.0/8", "127.0.0.1"])])
    assert policy.allowance("wiki.intranet.example").refusal("192.168.0.9") is None
    assert policy.allowance("www.example.org").refusal("10.9.9.9") is None
    assert policy.allowance("www.example.org").refusal("127.0.0.1") == "loopback"  # not in both lists
    assert policy.allowance("elsewhere.net").refusal("10.0.0.1") == "private"  # unknown hosts: public only
    assert policy.allowance("notintranet.example").refusal("10.0.0.1") == "private"


def test_a_literal_gets_what_some_source_naming_it_allows_and_a_name_the_strictest():
    """The guard decides each request for an IP literal by its own source (SourceScope); the
    resolver, which cannot tell sources apart, refuses only what no source naming the literal allows.
    A name's addresses are judged by the resolver alone: the strictest of the sources naming it."""
    policy = AddressPolicy.from_sources([(["127.0.0.1"], ["127.0.0.1"]), (["127.0.0.1", "localhost"], False),
                                         (["localhost"], True)])
    assert policy.allowance("127.0.0.1").refusal("127.0.0.1") is None
    assert policy.allowance("localhost").refusal("127.0.0.1") == "loopback"
    assert policy.allowance("127.0.0.2").refusal("127.0.0.2") == "loopback"  # named by no source


def test_a_sources_scope_is_its_domains_and_their_subdomains_on_any_port():
    scope = SourceScope.of_domains(["Example.org", "10.1.2.3"], allow_private=["10.1.0.0/16"])
    assert scope.refusal("https", "www.example.org", None) is None
    assert scope.refusal("http", "example.org.", 8080) is None
    assert scope.refusal("http", "example.org.evil.net", None) == "out_of_scope"
    assert scope.refusal("http", "notexample.org", None) == "out_of_scope"
    assert scope.refusal("ftp", "example.org", None) == "scheme"
    assert scope.refusal("http", "10.1.2.3", 81) is None  # a literal on its list, and allowed
    assert scope.refusal("http", "10.10.1.2.3", None) == "out_of_scope"  # a literal has no subdomains
    assert SourceScope.of_domains(["2.3"], False).refusal("http", "10.1.2.3", None) == "out_of_scope"  # nor is one
    assert SourceScope.of_domains(["10.1.2.3"], allow_private=False).refusal("http", "10.1.2.3", None) == "private"
    assert SourceScope().refusal("http", "example.org", None) == "out_of_scope"  # no domains: nothing


def test_a_served_source_allows_exactly_its_own_address_and_port():
    scope = SourceScope.served("http", "127.0.0.1", 8123)
    assert scope.refusal("http", "127.0.0.1", 8123) is None
    assert scope.refusal("http", "127.0.0.1", 8124) == "out_of_scope"
    assert scope.refusal("http", "127.0.0.1", None) == "out_of_scope"  # port 80
    assert scope.refusal("https", "127.0.0.1", 8123) == "out_of_scope"
    assert scope.refusal("http", "localhost", 8123) == "out_of_scope"
    assert scope.refusal("http", "[::1]", 8123) == "out_of_scope"


class ScriptedResolver:
    """Answers each resolution of a name with the next list of addresses in its script; never
    touches the network. [] is a name that does not resolve."""

    def __init__(self, script: list[list[str]]):
        self.script = list(script)

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"):
        receiver.resolutionBegan(object())
        for host in self.script.pop(0):
            receiver.addressResolved((IPv6Address if ":" in host else IPv4Address)("TCP", host, portNumber))
        receiver.resolutionComplete()


class Receiver:
    def __init__(self):
        self.addresses, self.complete = [], False

    def resolutionBegan(self, resolution):
        pass

    def addressResolved(self, address):
        self.addresses.append(address.host)

    def resolutionComplete(self):
        self.complete = True


def resolve(resolver: GuardedResolver, host: str) -> list[str]:
    receiver = Receiver()
    resolver.resolveHostName(receiver, host, 80)
    assert receiver.complete
    return receiver.addresses


def test_rebinding_answers_are_filtered_at_every_resolution():
    """A name that answers public first and private later: the connecting client only ever sees
    the public answers, however the answers change between resolutions."""
    policy = AddressPolicy()
    script = [["93.184.215.14"], ["127.0.0.1"], ["10.0.0.5", "93.184.215.14"], ["::ffff:169.254.169.254"], []]
    resolver = GuardedResolver(reactor=None, policy=policy, resolver=ScriptedResolver(script))
    assert resolve(resolver, "rebind.example") == ["93.184.215.14"]
    assert resolve(resolver, "rebind.example") == []
    assert policy.refusal_of("rebind.example") == "loopback"
    assert resolve(resolver, "rebind.example") == ["93.184.215.14"]
    assert policy.refusal_of("rebind.example") is None
    assert resolve(resolver, "rebind.example") == []
    assert policy.refusal_of("rebind.example") == "link_local"


def test_a_name_that_does_not_resolve_is_not_remembered_as_allowed():
    policy = AddressPolicy()
    resolver = GuardedResolver(reactor=None, policy=policy, resolver=ScriptedResolver([[], ["127.0.0.1"]]))
    assert resolve(resolver, "gone.example") == []
    assert policy.refusal_of("gone.example") is None  # a DNS failure, not a refusal: the crawl says dns_error
    assert resolve(resolver, "gone.example") == []  # and nothing was cached from it
