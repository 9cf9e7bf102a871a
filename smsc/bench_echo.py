"""The protocol ceiling for `smsc bench`: a bare codec echo server.

It frames and decodes every PDU with smsc's own codec and answers with smsc's own codec, on the
same Twisted reactor the switch runs on, with one `transport.write` per burst of input; but no
session state machine, no validation and no store. A submit_sm gets a submit_sm_resp with a
counter as its message id. Binds are accepted whatever their credentials.

    python -m smsc.bench_echo [--host 127.0.0.1] [--port 0]

prints `echo listening on HOST:PORT` once it listens.
"""

import argparse
import sys

from twisted.internet.protocol import Factory, Protocol

from .protocol.constants import BINDS, Command, Status
from .protocol.pdu import HEADER_SIZE, Pdu, PduError, decode, encode

_C = Command
_MAX_PDU = 65536


class EchoProtocol(Protocol):
    def __init__(self) -> None:
        self._buf = b""

    def dataReceived(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos, size = 0, len(buf)
        close = False
        while size - pos >= 4:
            length = int.from_bytes(buf[pos : pos + 4], "big")
            if length < HEADER_SIZE or length > _MAX_PDU:
                out.append(encode(Pdu(_C.generic_nack, 0, Status.RINVCMDLEN)))
                close = True
                break
            if size - pos < length:
                break
            pdu = decode(buf[pos : pos + length])
            pos += length
            if type(pdu) is PduError:
                if not pdu.command_id & 0x80000000:
                    out.append(encode(Pdu(_C.generic_nack, pdu.sequence, pdu.status)))
                continue
            command = pdu.command
            if command is _C.submit_sm:
                self.factory.next_id += 1
                resp = Pdu(
                    _C.submit_sm_resp, pdu.sequence, 0, {"message_id": str(self.factory.next_id)}
                )
                out.append(encode(resp))
            elif command is _C.enquire_link:
                out.append(encode(Pdu(_C.enquire_link_resp, pdu.sequence)))
            elif command in BINDS:
                out.append(encode(Pdu(command.response, pdu.sequence, 0, {"system_id": "echo"})))
            elif command is _C.unbind:
                out.append(encode(Pdu(_C.unbind_resp, pdu.sequence)))
                close = True
                break
            elif not command.is_response:
                out.append(encode(Pdu(_C.generic_nack, pdu.sequence, Status.RINVCMDID)))
        self._buf = b"" if close else buf[pos:]
        if out:
            self.transport.write(b"".join(out))
        if close:
            self.transport.loseConnection()


class EchoFactory(Factory):
    protocol = EchoProtocol
    noisy = False

    def __init__(self) -> None:
        self.next_id = 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    from twisted.internet import reactor

    port = reactor.listenTCP(args.port, EchoFactory(), interface=args.host)
    address = port.getHost()
    print(f"echo listening on {address.host}:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    sys.exit(main())
