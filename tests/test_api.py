"""The HTTP API (smsc.channels.api, smsc.channels.auth) on the real store, acceptor and SMPP
server's authentication, on the reactor: each request is real HTTP bytes fed to Twisted Web's
parser on an in-memory connection (from any source address), and its answer parsed back with
the standard library's http.client. Trial runs the reactor; the store's writer and read pool
are real threads on a temp SQLite file (or PostgreSQL with SMSC_TEST_PG_URL)."""

import base64
import http.client
import io
import json
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.resource import Resource
from twisted.web.server import Site

from smsc.accept import Acceptor
from smsc.channels import Context, api
from smsc.config import Config, HttpConfig, LimitsConfig, SmppConfig
from smsc.metrics import Metrics
from smsc.server import SmppServer
from smsc.store import accounts, tokens
from smsc.store.db import writing
from smsc.store.service import Store

NUMBER = "33600000001"
PASSWORDS = {"acme": "acmepw", "shop": "shoppw", "capped": "cappedpw", "payg": "paygpw",
             "walled": "walledpw", "gone": "gonepw"}  # fmt: skip


def basic(system_id: str, password: str | None = None) -> str:
    pair = f"{system_id}:{PASSWORDS[system_id] if password is None else password}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


ACME = basic("acme")


@dataclass
class Response:
    code: int
    headers: http.client.HTTPMessage
    body: dict | None


class _Socket:
    """What http.client.HTTPResponse reads an answer from."""

    def __init__(self, data: bytes):
        self.data = data

    def makefile(self, mode):
        return io.BytesIO(self.data)


class _Connection(StringTransport):
    """An in-memory connection that says when the server closed it (after its answer)."""

    def __init__(self, host: str):
        super().__init__(IPv4Address("TCP", "127.0.0.1", 8080), IPv4Address("TCP", host, 40000))
        self.closed = Deferred()

    def loseConnection(self):
        super().loseConnection()
        if not self.closed.called:
            self.closed.callback(self.value())


class ApiTest(unittest.TestCase):
    timeout = 20

    @pytest.fixture(autouse=True)
    def _store(self, engine, db_url, fast_scrypt):
        with writing(engine) as conn:
            for system_id, password in PASSWORDS.items():
                accounts.add(conn, system_id, password, 1.0)
            accounts.change(conn, "capped", tps=1)
            accounts.change(conn, "payg", prepaid=True)
            accounts.change(conn, "walled", networks="10.0.0.0/8")
            accounts.change(conn, "gone", enabled=False)
        self.engine, self.db_url = engine, db_url

    def setUp(self):
        self.store = Store(self.db_url, reactor)
        self.store.start()
        self.addCleanup(self.store.stop)
        self.acceptor = Acceptor(self.store, reactor)
        limits = LimitsConfig(bind_failures_per_id=3, lockout=60.0)
        self.server = SmppServer(SmppConfig(), self.store, self.acceptor, reactor, None, limits)
        config = Config(http=HttpConfig(public_url="https://sms.example.com/"))
        self.metrics = Metrics()
        ctx = Context(self.store, self.acceptor, self.server, reactor, config, self.metrics)
        v1 = Resource()
        v1.putChild(b"v1", api.resource(ctx))
        root = Resource()
        root.putChild(b"api", v1)
        self.site = Site(root, timeout=None)

    async def request(self, method: str, path: str, body=None, auth=ACME, host="127.0.0.1",
                      headers=None) -> Response:  # fmt: skip
        """One request on a connection of its own from `host`: `body` a dict is sent as JSON,
        bytes as they are."""
        headers = {"Host": "sms.example.com", "Connection": "close", **(headers or {})}
        if auth:
            headers["Authorization"] = auth
        if isinstance(body, dict | list):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        if body is not None:
            headers["Content-Length"] = str(len(body))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        raw = f"{method} /api/v1{path} HTTP/1.1\r\n{head}\r\n".encode() + (body or b"")
        transport = _Connection(host)
        channel = self.site.buildProtocol(transport.getPeer())
        channel.makeConnection(transport)
        channel.dataReceived(raw)
        data = await transport.closed
        channel.connectionLost(Failure(ConnectionDone()))
        answer = http.client.HTTPResponse(_Socket(data))
        answer.begin()
        content = answer.read()
        assert answer.getheader("Content-Type") == "application/json", content
        return Response(answer.status, answer.headers, json.loads(content))

    async def send(self, auth=ACME, host="127.0.0.1", **fields) -> Response:
        return await self.request("POST", "/messages", {"from": "ACME", **fields}, auth, host)

    async def sent_id(self, **fields) -> str:
        answer = await self.send(to=NUMBER, text="hello", **fields)
        assert answer.code == 201, answer.body
        return answer.body["messages"][0]["id"]

    def sql(self, statement: str, **values) -> None:
        with writing(self.engine) as conn:
            conn.execute(text(statement), values)

    # -- sending -----------------------------------------------------------------------------

    async def test_send_to_one_number_then_read_it_back(self):
        answer = await self.send(to=NUMBER, text="hello")
        assert answer.code == 201
        (outcome,) = answer.body["messages"]
        assert answer.body["accepted"] == 1 and answer.body["refused"] == 0
        assert outcome["to"] == NUMBER and outcome["id"].isdigit()
        shown = await self.request("GET", f"/messages/{outcome['id']}")
        assert shown.code == 200
        message = shown.body
        assert (message["id"], message["to"], message["from"]) == (outcome["id"], NUMBER, "ACME")
        assert message["state"] == "ACCEPTED"
        assert message["receipt"] is None and message["callback_url"] is None
        assert message["submitted_at"].endswith("+00:00")

    async def test_each_destination_is_a_message_and_the_refused_say_why(self):
        answer = await self.send(to=[NUMBER, "not a number", "+33600000002"], text="hi")
        assert answer.code == 201
        first, refused, last = answer.body["messages"]
        assert refused == {
            "to": "not a number", "error": "RINVDSTADR", "status": 0x0B,
            "reason": "not a phone number that any route can reach",
        }  # fmt: skip
        assert int(last["id"]) > int(first["id"])
        assert (answer.body["accepted"], answer.body["refused"]) == (2, 1)
        shown = await self.request("GET", f"/messages/{last['id']}")
        assert shown.body["to"] == "33600000002"  # normalised to E.164

    async def test_times_and_callback_are_kept(self):
        message_id = await self.sent_id(
            send_at="2099-06-01T12:00:00+02:00", validity=3600,
            callback_url="https://app.example.com/receipts?x=1",
        )  # fmt: skip
        shown = (await self.request("GET", f"/messages/{message_id}")).body
        assert shown["send_at"] == "2099-06-01T10:00:00+00:00"
        assert shown["valid_until"] == "2099-06-01T11:00:00+00:00"
        assert shown["callback_url"] == "https://app.example.com/receipts?x=1"
        with self.engine.connect() as conn:
            receipt = conn.execute(
                text("SELECT registered_delivery FROM messages WHERE id = :id"),
                {"id": int(message_id)},
            ).scalar()
        assert receipt == 1  # a callback asks for a receipt

    async def test_a_message_the_switch_refuses_is_422(self):
        every = await self.send(to=["nope", "12"], text="hi")
        assert every.code == 422
        assert [m["error"] for m in every.body["messages"]] == ["RINVDSTADR", "RINVDSTADR"]
        sender = await self.send(to=NUMBER, text="hi", **{"from": "NOT A SENDER!"})
        assert (sender.code, sender.body["error"]) == (422, "RINVSRCADR")
        assert sender.body["detail"] == "this sender is not allowed for the account"
        expiry = await self.send(to=NUMBER, text="hi", send_at="2099-01-02T00:00:00Z",
                                 valid_until="2099-01-01T00:00:00Z")  # fmt: skip
        assert (expiry.code, expiry.body["error"]) == (422, "RINVEXPIRY")
        too_late = await self.send(to=NUMBER, text="hi", send_at="2150-01-01T00:00:00Z")
        assert (too_late.code, too_late.body["error"]) == (422, "RINVSCHED")
        long = await self.send(to=NUMBER, text="x" * 200_000)
        assert (long.code, long.body["error"]) == (422, "RINVMSGLEN")

    async def test_refused_for_credit_only_is_402(self):
        answer = await self.send(auth=basic("payg"), to=[NUMBER, "33600000002"], text="hi")
        assert (answer.code, answer.body["error"]) == (402, "RNOCREDIT")
        assert [m["status"] for m in answer.body["messages"]] == [0x403, 0x403]

    async def test_over_the_throughput_cap_is_429_with_retry_after(self):
        answers = [await self.send(auth=basic("capped"), to=NUMBER, text="hi") for _ in range(3)]
        assert answers[0].code == 201
        throttled = [a for a in answers if a.code == 429]
        assert throttled, [a.code for a in answers]
        assert throttled[0].body["error"] == "RTHROTTLED"
        assert throttled[0].headers["Retry-After"] == "1"

    async def test_store_unavailable_is_503_and_a_failed_store_500(self):
        self.acceptor.closing = True  # as when the switch stops: refused with RMSGQFUL
        closing = await self.send(to=NUMBER, text="hi")
        assert (closing.code, closing.body["error"]) == (503, "RMSGQFUL")
        assert closing.headers["Retry-After"] == "5"
        self.acceptor.closing = False
        self.store.insert = lambda rows, stored, *args: stored(RuntimeError("disk on fire"))
        failed = await self.send(to=NUMBER, text="hi")
        assert (failed.code, failed.body["error"]) == (500, "RSYSERR")

    async def test_malformed_requests_are_400_naming_the_field(self):
        cases = [
            ({"text": "hi"}, "to"),
            ({"to": 33600000001, "text": "hi"}, "to"),
            ({"to": [], "text": "hi"}, "to"),
            ({"to": [NUMBER, 7], "text": "hi"}, "to"),
            ({"to": NUMBER}, "text"),
            ({"to": NUMBER, "text": ""}, "text"),
            ({"to": NUMBER, "text": "hi", "from": 36180}, "from"),
            ({"to": NUMBER, "text": "hi", "send_at": "2099-01-01T10:00:00"}, "send_at"),
            ({"to": NUMBER, "text": "hi", "send_at": "tomorrow"}, "send_at"),
            ({"to": NUMBER, "text": "hi", "valid_until": 4102444800}, "valid_until"),
            ({"to": NUMBER, "text": "hi", "validity": 0}, "validity"),
            ({"to": NUMBER, "text": "hi", "validity": True}, "validity"),
            (
                {"to": NUMBER, "text": "hi", "validity": 60, "valid_until": "2099-01-01T00:00:00Z"},
                "validity",
            ),  # fmt: skip
            ({"to": NUMBER, "text": "hi", "callback_url": "ftp://example.com/"}, "callback_url"),
            ({"to": NUMBER, "text": "hi", "callback_url": "https://"}, "callback_url"),
            ({"to": NUMBER, "text": "hi", "callback_url": "https://x:port/"}, "callback_url"),
            (
                {"to": NUMBER, "text": "hi", "callback_url": "https://e.com/" + "a" * 500},
                "callback_url",
            ),  # fmt: skip
            ({"to": NUMBER, "text": "hi", "sendAt": "2099-01-01T00:00:00Z"}, "sendAt"),
            ({"to": [NUMBER] * 10_001, "text": "hi"}, "to"),
        ]
        for body, field in cases:
            answer = await self.request("POST", "/messages", {"from": "ACME", **body})
            assert answer.code == 400, (body, answer.body)
            assert (answer.body["error"], answer.body["field"]) == ("invalid_field", field), body
            assert field in answer.body["detail"]

    async def test_bodies_that_are_not_json_objects(self):
        for body in (b"{", b'"hi"', b"[1]", b'{"to": "\xff"}', b"[" * 100_000):
            answer = await self.request("POST", "/messages", body,
                                        headers={"Content-Type": "application/json"})  # fmt: skip
            assert (answer.code, answer.body["error"]) == (400, "invalid_json"), body
        plain = await self.request(
            "POST", "/messages", b"{}", headers={"Content-Type": "text/plain"}
        )
        assert (plain.code, plain.body["error"]) == (415, "unsupported_media_type")
        big = await self.request("POST", "/messages", {"to": NUMBER, "text": "x" * 1_000_000})
        assert (big.code, big.body["error"]) == (413, "too_large")

    # -- reading, listing, cancelling -------------------------------------------------------

    async def test_another_accounts_message_is_not_found(self):
        message_id = await self.sent_id()
        for auth in (basic("shop"), ACME):
            for method in ("GET", "DELETE"):
                path = f"/messages/{message_id}" if auth != ACME else "/messages/999999"
                answer = await self.request(method, path, auth=auth)
                assert (answer.code, answer.body["error"]) == (404, "not_found"), (auth, method)
        for odd in ("abc", "-1", "99999999999999999999", "1.0"):
            assert (await self.request("GET", f"/messages/{odd}")).code == 404
        still = await self.request("GET", f"/messages/{message_id}")
        assert still.body["state"] == "ACCEPTED"  # shop's DELETE did nothing

    async def test_cancel_while_waiting_then_409(self):
        message_id = await self.sent_id(send_at="2099-01-01T00:00:00Z")
        cancelled = await self.request("DELETE", f"/messages/{message_id}")
        assert cancelled.code == 200
        assert cancelled.body["state"] == "DELETED"
        assert cancelled.body["receipt"]["state"] == "DELETED"
        again = await self.request("DELETE", f"/messages/{message_id}")
        assert (again.code, again.body["error"]) == (409, "not_waiting")
        assert again.body["message"]["state"] == "DELETED"
        left = await self.sent_id()
        self.sql("UPDATE messages SET state = 'ENROUTE' WHERE id = :id", id=int(left))
        assert (await self.request("DELETE", f"/messages/{left}")).code == 409

    async def test_listing_newest_first_by_pages_and_by_state(self):
        ids = [await self.sent_id() for _ in range(5)]
        await self.request("POST", "/messages", {"from": "SHOP", "to": NUMBER, "text": "x"},
                           auth=basic("shop"))  # fmt: skip
        self.sql("UPDATE messages SET state = 'DELIVERED' WHERE id IN (:a, :b)",
                 a=int(ids[1]), b=int(ids[3]))  # fmt: skip
        seen, cursor = [], ""
        while True:
            page = await self.request("GET", f"/messages?limit=2{cursor}")
            assert page.code == 200
            seen += [m["id"] for m in page.body["messages"]]
            if page.body["next"] is None:
                break
            assert len(page.body["messages"]) == 2
            cursor = f"&before={page.body['next']}"
        assert seen == ids[::-1]  # shop's message is not in acme's list
        # A cursor past every id (19 digits, over the ids' 2**63): the newest first, no error.
        past = await self.request("GET", "/messages?limit=2&before=9999999999999999999")
        assert [m["id"] for m in past.body["messages"]] == ids[::-1][:2]
        delivered = await self.request("GET", "/messages?status=DELIVERED")
        assert [m["id"] for m in delivered.body["messages"]] == [ids[3], ids[1]]
        assert delivered.body["messages"][0]["receipt"]["state"] == "DELIVERED"
        both = await self.request("GET", "/messages?status=delivered,ACCEPTED&status=EXPIRED")
        assert len(both.body["messages"]) == 5
        for query, field in (("status=SENT", "status"), ("limit=0", "limit"),
                             ("limit=501", "limit"), ("before=x", "before")):  # fmt: skip
            bad = await self.request("GET", f"/messages?{query}")
            assert (bad.code, bad.body["field"]) == (400, field)

    # -- authentication ----------------------------------------------------------------------

    async def test_no_or_wrong_credentials_are_401_with_the_challenges(self):
        for auth in (None, basic("acme", "wrong"), basic("nobody", "pw"), "Basic !!!",
                     "Digest x", "Bearer smsc_unknown"):  # fmt: skip
            answer = await self.request("GET", "/messages", auth=auth)
            assert (answer.code, answer.body["error"]) == (401, "unauthorized"), auth
            assert answer.headers.get_all("WWW-Authenticate") == [
                'Basic realm="smsc", charset="UTF-8"',
                'Bearer realm="smsc"',
            ]
        disabled = await self.request("GET", "/messages", auth=basic("gone"))
        assert disabled.code == 401

    async def test_lockout_refuses_without_the_password_check(self):
        checks = []
        real = accounts.verify_password
        self.patch(accounts, "verify_password", lambda *a: checks.append(1) or real(*a))
        for _ in range(3):
            assert (await self.request("GET", "/messages", auth=basic("shop", "x"))).code == 401
        assert len(checks) == 3
        locked = await self.request("GET", "/messages", auth=basic("shop"))
        assert locked.code == 401 and len(checks) == 3  # no KDF for a locked-out system_id
        assert ("account", "shop") in self.server.guard.lockouts

    async def test_a_success_forgets_the_failures(self):
        for password in ("x", "x", None, "x", "x", None):
            answer = await self.request("GET", "/messages", auth=basic("acme", password))
            assert answer.code == (200 if password is None else 401)

    async def test_networks_hold_for_passwords_and_tokens(self):
        with writing(self.engine) as conn:
            token = tokens.add(conn, accounts.get(conn, "walled").id, "", 1.0)
        for auth in (basic("walled"), f"Bearer {token}"):
            outside = await self.request("GET", "/messages", auth=auth, host="192.0.2.1")
            assert outside.code == 401
            inside = await self.request("GET", "/messages", auth=auth, host="10.1.2.3")
            assert inside.code == 200

    async def test_bearer_token_until_revoked_or_disabled(self):
        with writing(self.engine) as conn:
            acme = accounts.get(conn, "acme")
            token = tokens.add(conn, acme.id, "app", 1.0)
            gone = tokens.add(conn, accounts.get(conn, "gone").id, "", 1.0)
        bearer = f"Bearer {token}"
        sent = await self.send(auth=bearer, to=NUMBER, text="hi")
        assert sent.code == 201
        message_id = sent.body["messages"][0]["id"]
        assert (await self.request("GET", f"/messages/{message_id}", auth=ACME)).code == 200
        assert (await self.request("GET", "/messages", auth=f"Bearer {gone}")).code == 401
        with writing(self.engine) as conn:
            assert tokens.revoke(conn, acme.id, tokens.fingerprint(tokens.digest(token)))
        assert (await self.request("GET", "/messages", auth=bearer)).code == 401

    async def test_no_password_or_token_in_the_log(self):
        lines = []

        def observe(event):
            lines.append(formatEvent(event))

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        await self.request("GET", "/messages", auth=basic("acme", "S3CRETPW"))
        await self.request("GET", "/messages", auth="Bearer smsc_T0KENVALUE")
        assert any("HTTP authentication refused for acme" in line for line in lines), lines
        assert not [line for line in lines if "S3CRETPW" in line or "T0KENVALUE" in line]

    # -- the rest ----------------------------------------------------------------------------

    async def test_unknown_paths_and_methods_answer_json(self):
        for path in ("", "/", "/nothing", "/messages/1/more"):
            answer = await self.request("GET", path)
            assert (answer.code, answer.body["error"]) == (404, "not_found"), path
        put = await self.request("PUT", "/messages", {})
        assert (put.code, put.body["error"]) == (405, "method_not_allowed")
        assert put.headers["Allow"] == "GET, POST"

    async def test_requests_are_counted_by_operation_and_code(self):
        await self.send(to=NUMBER, text="hi")
        await self.request("GET", "/messages/999999")
        await self.request("GET", "/nothing")
        count = self.metrics.http_requests.labels
        assert count("send", "201")._value.get() == 1
        assert count("show", "404")._value.get() == 1
        assert count("unknown", "404")._value.get() == 1

    async def test_the_openapi_document_is_public(self):
        answer = await self.request("GET", "/openapi.json", auth=None)
        assert answer.code == 200
        assert answer.body["openapi"].startswith("3.")
        assert answer.body["servers"] == [{"url": "https://sms.example.com/api/v1"}]
        assert set(answer.body["paths"]) == {"/messages", "/messages/{id}", "/openapi.json"}
