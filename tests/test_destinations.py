"""Where callbacks may go (smsc.channels.destinations): public addresses, and the networks the
config allows; checked on the address the switch connects to, over real loopback sockets."""

import pytest
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from smsc.channels import destinations
from smsc.channels.callbacks import poster

LOOPBACK = destinations.networks(["127.0.0.0/8"])


@pytest.mark.parametrize(
    ("address", "extra", "ok"),
    [
        ("93.184.216.34", [], True),  # a public IPv4 address
        ("2606:2800:220:1:248:1893:25c8:1946", [], True),
        ("127.0.0.1", [], False),
        ("10.1.2.3", [], False),
        ("192.168.0.9", [], False),
        ("169.254.169.254", [], False),  # a cloud's metadata service
        ("::1", [], False),
        ("fd00::1", [], False),
        ("::ffff:127.0.0.1", [], False),  # IPv4 loopback written as IPv6
        ("0.0.0.0", [], False),
        ("127.0.0.1", LOOPBACK, True),
        ("10.1.2.3", destinations.networks(["10.0.0.0/8"]), True),
    ],
)
def test_only_public_addresses_unless_allowed(address, extra, ok):
    assert destinations.allowed(address, extra) is ok


class Received(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.bodies = []

    def render_POST(self, request):
        self.bodies.append(request.content.read())
        return b""


class Callbacks(unittest.TestCase):
    def setUp(self):
        self.received = Received()
        self.port = reactor.listenTCP(0, Site(self.received), interface="127.0.0.1")
        self.url = f"http://localhost:{self.port.getHost().port}/receipts"

    def tearDown(self):
        return self.port.stopListening()

    @inlineCallbacks
    def test_a_callback_to_a_name_for_a_private_address_is_refused(self):
        post = poster(reactor, 5.0)
        with self.assertRaises(destinations.Refused):
            yield post(self.url, b"{}")
        self.assertEqual(self.received.bodies, [])

    @inlineCallbacks
    def test_a_callback_to_an_allowed_network_is_posted(self):
        pool = HTTPConnectionPool(reactor, persistent=False)
        post = poster(reactor, 5.0, ["127.0.0.0/8", "::1/128"], pool)
        yield post(self.url, b'{"id": "1"}')
        self.assertEqual(self.received.bodies, [b'{"id": "1"}'])
