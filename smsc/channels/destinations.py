"""Where the switch may POST what its HTTP clients asked for (receipt callbacks, replies): a
client names the URL, so without a check it could make the switch reach what only the switch
can reach (its own metrics, a database, a cloud's metadata service). A callback connects only
to public addresses, checked on the address it actually connects to (a name that resolves to
a private address later is refused then too), unless `[http] callback_networks` allows a
network."""

import ipaddress
import socket

from twisted.internet import threads
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.ssl import optionsForClientTLS
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Refused(Exception):
    """The URL's host is not an address a callback may reach."""


def networks(cidrs: list[str]) -> list[Network]:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def allowed(address: str, extra: list[Network]) -> bool:
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global or any(ip in network for network in extra)


@implementer(IAgentEndpointFactory)
class PublicOnly:
    """Agent endpoints that resolve the host, check the address, then connect to it (TLS
    verified against the host name, as the default endpoints do)."""

    def __init__(self, reactor, extra: list[Network], timeout: float):
        self.reactor = reactor
        self.extra = extra
        self.timeout = timeout

    def endpointForURI(self, uri):
        return _Checked(self, uri)


class _Checked:
    def __init__(self, factory: PublicOnly, uri):
        self.factory = factory
        self.uri = uri

    def connect(self, protocol_factory):
        host = self.uri.host.decode("idna")
        d = threads.deferToThread(socket.getaddrinfo, host, self.uri.port, 0, socket.SOCK_STREAM)
        return d.addCallback(self._connect, host, protocol_factory)

    def _connect(self, found, host: str, protocol_factory):
        f = self.factory
        address = next((info[4][0] for info in found if allowed(info[4][0], f.extra)), None)
        if address is None:
            raise Refused(f"{host} is not a public address ([http] callback_networks)")
        tcp = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
        endpoint = tcp(f.reactor, address, self.uri.port, timeout=f.timeout)
        if self.uri.scheme == b"https":
            endpoint = wrapClientTLS(optionsForClientTLS(host), endpoint)
        return endpoint.connect(protocol_factory)
