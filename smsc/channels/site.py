"""The `[http]` listener: the HTTP API under /api/v1/ and the web page under /."""

from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from . import Context, api, web

# Octets of a request body: a CSV of 10,000 numbers is some 150 kB. Twisted reads a whole body
# before any page sees it, so the cap is kept here, while it arrives.
MAX_BODY = 2_000_000
_REFUSAL = b'{"error": "too_large", "detail": "the body is over %d octets"}' % MAX_BODY
_TOO_LARGE = (
    b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_REFUSAL), _REFUSAL)
)


class _CappedRequest(Request):
    """Refuses a body over MAX_BODY as it comes (declared or chunked) and closes."""

    _left = MAX_BODY

    def gotLength(self, length):
        if length is not None and length > MAX_BODY:
            return self._refuse()
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._left -= len(data)
        if self._left < 0:
            return self._refuse()
        super().handleContentChunk(data)

    def _refuse(self):
        self._left = -1
        self.channel.transport.write(_TOO_LARGE)
        self.channel.transport.loseConnection()


def build(ctx: Context) -> Site:
    root = web.resource(ctx)  # the page owns / and what it links to
    v1 = Resource()
    v1.putChild(b"v1", api.resource(ctx))
    root.putChild(b"api", v1)
    site = Site(root, requestFactory=_CappedRequest)
    site.noisy = False
    site.log = lambda request: None  # an access log would write the numbers in URLs
    return site
