"""The `[http]` listener's cap on request bodies (smsc.channels.site), over a real socket: a
body over the cap is refused as it arrives, declared or chunked, and the connection closed."""

import socket

from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from smsc.channels import site


class Length(Resource):
    isLeaf = True

    def render_POST(self, request):
        return b"got %d" % len(request.content.read())


class BodyCap(unittest.TestCase):
    def setUp(self):
        factory = Site(Length(), requestFactory=site._CappedRequest)
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")

    def tearDown(self):
        return self.port.stopListening()

    def exchange(self, head: bytes, chunks=()):
        def call() -> bytes:
            with socket.create_connection(("127.0.0.1", self.port.getHost().port), 10) as s:
                s.sendall(head)
                try:
                    for chunk in chunks:
                        s.sendall(chunk)
                except OSError:
                    pass  # closed on us: the answer came before
                answer = b""
                while data := s.recv(65536):
                    answer += data
                return answer

        return threads.deferToThread(call)

    @inlineCallbacks
    def test_a_body_under_the_cap_reaches_the_page(self):
        body = b"x" * 100_000
        answer = yield self.exchange(
            b"POST / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"))
        self.assertTrue(answer.endswith(b"got 100000"))

    @inlineCallbacks
    def test_a_declared_length_over_the_cap_is_refused_before_the_body(self):
        answer = yield self.exchange(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (site.MAX_BODY + 1)
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"))
        self.assertIn(b'"too_large"', answer)

    @inlineCallbacks
    def test_a_chunked_body_growing_over_the_cap_is_refused(self):
        chunk = b"x" * 65536
        chunks = [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (site.MAX_BODY // len(chunk) + 2)
        answer = yield self.exchange(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n", chunks
        )
        self.assertTrue(answer.startswith(b"HTTP/1.1 413"))
        self.assertNotIn(b"got ", answer)
