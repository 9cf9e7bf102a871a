"""The web page (smsc.channels.web) served on a real loopback socket by the real reactor, with
the real store, acceptor and password checks underneath; the client is the stdlib's
http.client, run in a thread. Logging in and out, the signed session cookie and the CSRF token,
sending to a pasted list and a CSV file (ids and reasons), the account's messages only,
cancelling one that waits, and the opt-out count. Then the lists of numbers as people give
them, and the keys kept in the store."""

import http.client
import re
import tempfile
import time
import uuid
from html import unescape
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from twisted.internet import reactor, threads
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest
from twisted.web.server import Site

from smsc.accept import Acceptor
from smsc.channels import REASONS, Context, lists, sessions, web
from smsc.config import Config, HttpConfig
from smsc.protocol.constants import Status
from smsc.server import SmppServer
from smsc.store import accounts, db, keys, optouts, schema, senders
from smsc.store.db import writing
from smsc.store.service import Store

NUMBERS = ["33600000001", "33600000002", "33600000003"]
INVALID = REASONS[Status.RINVDSTADR]


class Answer:
    def __init__(self, response: http.client.HTTPResponse):
        self.status = response.status
        self.headers = response.headers
        self.text = response.read().decode()

    def cookie(self) -> str | None:
        """The session cookie's value that a Set-Cookie of the answer sets."""
        for header in self.headers.get_all("set-cookie") or []:
            if header.startswith("smsc_session="):
                return header.split(";")[0].split("=", 1)[1]
        return None

    def csrf(self) -> str:
        return re.search(r'name="csrf" value="([0-9a-f]+)"', self.text).group(1)

    def cells(self, table_id: str) -> list[list[str]]:
        """The text of the cells of a table's body, row by row."""
        table = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', self.text, re.S)
        rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), re.S)
        cells = (re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows)
        return [[unescape(re.sub(r"<[^>]+>", "", c)) for c in row] for row in cells]


class WebPage(unittest.TestCase):
    def setUp(self):
        self.patch(accounts, "_N", 16)  # cheap scrypt: the same code path
        workdir = Path(tempfile.mkdtemp())
        self.store = Store(f"sqlite:///{workdir / 'smsc.db'}", reactor)
        db.upgrade(self.store.engine)
        now = reactor.seconds()
        with writing(self.store.engine) as conn:
            for system_id, password, names in (("acme", "secret", ["ACME"]),
                                               ("other", "other", ["OTHER", "36180"])):  # fmt: skip
                account_id = accounts.add(conn, system_id, password, now).id
                for name in names:
                    senders.add(conn, account_id, name)
            self.acme, self.other = accounts.get(conn, "acme"), accounts.get(conn, "other")
        acceptor = Acceptor(self.store, reactor)
        server = SmppServer(Config().smpp, self.store, acceptor, reactor)
        self.config = Config(http=HttpConfig(port=0))
        ctx = Context(self.store, acceptor, server, reactor, self.config)
        site = Site(web.resource(ctx))
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.store.start()
        self.cookie = None

    @inlineCallbacks
    def tearDown(self):
        yield self.port.stopListening()
        yield self.store.stop()

    # -- the client --------------------------------------------------------------------------

    def request(self, method, path, fields=None, files=None, cookie=None) -> Answer:
        """A request in a thread; form fields urlencoded, or multipart with files."""
        headers, body = {}, None
        cookie = self.cookie if cookie is None else cookie
        if cookie:
            headers["cookie"] = f"smsc_session={cookie}"
        if files is not None:
            boundary = uuid.uuid4().hex
            body = _multipart(boundary, fields or {}, files)
            headers["content-type"] = f"multipart/form-data; boundary={boundary}"
        elif fields is not None:
            body = urlencode(fields).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"

        def call():
            conn = http.client.HTTPConnection("127.0.0.1", self.port.getHost().port, timeout=10)
            try:
                conn.request(method, path, body, headers)
                return Answer(conn.getresponse())
            finally:
                conn.close()

        return threads.deferToThread(call)

    @inlineCallbacks
    def log_in(self, system_id="acme", password="secret"):
        answer = yield self.request(
            "POST", "/login", {"system_id": system_id, "password": password}
        )
        self.assertEqual(answer.status, 303)
        self.cookie = answer.cookie()
        home = yield self.request("GET", "/")
        self.assertEqual(home.status, 200)
        return home

    def send(self, page: Answer, numbers: str, text: str, **more) -> Answer:
        """POST the send form of a page (its CSRF token) with these numbers and text."""
        return self.request("POST", "/send", {"csrf": page.csrf(), "numbers": numbers,
                                              "text": text, **more})  # fmt: skip

    def messages(self) -> list[tuple]:
        query = select(schema.messages.c.id, schema.messages.c.account_id, schema.messages.c.source,
                       schema.messages.c.destination, schema.messages.c.state,
                       schema.messages.c.due_at)  # fmt: skip
        with self.store.engine.connect() as conn:
            return conn.execute(query.order_by(schema.messages.c.id)).all()

    # -- logging in --------------------------------------------------------------------------

    @inlineCallbacks
    def test_the_pages_need_a_login(self):
        for path in ("/", "/messages"):
            answer = yield self.request("GET", path)
            self.assertEqual((answer.status, answer.headers["location"]), (303, "/login"))
        answer = yield self.request("GET", "/login")
        self.assertEqual(answer.status, 200)
        self.assertIn('name="password"', answer.text)
        self.assertIn("frame-ancestors 'none'", answer.headers["content-security-policy"])

    @inlineCallbacks
    def test_a_wrong_password_shows_the_form_again_without_saying_what_was_wrong(self):
        wrong_password = yield self.request(
            "POST", "/login", {"system_id": "acme", "password": "nope"}
        )
        unknown = yield self.request("POST", "/login", {"system_id": "nobody", "password": "x"})
        for answer in (wrong_password, unknown):
            self.assertEqual(answer.status, 401)
            self.assertIsNone(answer.cookie())
            self.assertIn("Wrong account or password", answer.text)
        self.assertEqual(_without_value(wrong_password.text), _without_value(unknown.text))
        self.assertIn('value="acme"', wrong_password.text)  # the system_id is kept

    @inlineCallbacks
    def test_a_login_sets_a_signed_http_only_strict_cookie_for_12_hours(self):
        answer = yield self.request("POST", "/login", {"system_id": "acme", "password": "secret"})
        self.assertEqual((answer.status, answer.headers["location"]), (303, "/"))
        (header,) = answer.headers.get_all("set-cookie")
        attributes = {a.strip().lower() for a in header.split(";")[1:]}
        self.assertTrue({"httponly", "samesite=strict", "path=/", "max-age=43200"} <= attributes)
        self.assertNotIn("secure", attributes)  # plain HTTP here
        self.assertTrue(answer.cookie().startswith(f"{self.acme.id}."))
        self.cookie = answer.cookie()
        home = yield self.request("GET", "/")
        self.assertEqual(home.status, 200)
        self.assertIn("acme", home.text)

    @inlineCallbacks
    def test_the_cookie_is_secure_behind_an_https_public_url(self):
        self.config.http.public_url = "https://sms.example.com"
        answer = yield self.request("POST", "/login", {"system_id": "acme", "password": "secret"})
        self.assertIn("secure", answer.headers["set-cookie"].lower().split("; "))

    @inlineCallbacks
    def test_a_tampered_or_expired_cookie_is_refused(self):
        yield self.log_in()
        account_id, expiry, mac = self.cookie.split(".")
        with writing(self.store.engine) as conn:
            key = keys.secret(conn, sessions.KEY_NAME)  # what every node signs with
        now = reactor.seconds()
        forged = [
            f"{self.other.id}.{expiry}.{mac}",  # another account
            f"{account_id}.{int(expiry) + 3600}.{mac}",  # a longer life
            f"{account_id}.{expiry}.{'0' * len(mac)}",
            sessions.issue(key, self.acme, now - sessions.LIFETIME - 1),  # signed, expired
            "garbage",
        ]
        for cookie in forged:
            answer = yield self.request("GET", "/", cookie=cookie)
            self.assertEqual((answer.status, answer.headers["location"]), (303, "/login"))
        fresh = yield self.request("GET", "/", cookie=sessions.issue(key, self.acme, now))
        self.assertEqual(fresh.status, 200)

    @inlineCallbacks
    def test_a_new_password_ends_the_sessions_opened_with_the_old_one(self):
        yield self.log_in()
        with writing(self.store.engine) as conn:
            accounts.change(conn, "acme", password="newpw")
        answer = yield self.request("GET", "/")
        self.assertEqual(answer.status, 303)

    @inlineCallbacks
    def test_log_out(self):
        home = yield self.log_in()
        answer = yield self.request("POST", "/logout", {"csrf": home.csrf()})
        self.assertEqual((answer.status, answer.headers["location"]), (303, "/login"))
        self.assertEqual(answer.cookie(), "")
        self.assertIn("max-age=0", answer.headers["set-cookie"].lower())

    # -- CSRF --------------------------------------------------------------------------------

    @inlineCallbacks
    def test_a_post_without_the_session_csrf_token_is_forbidden(self):
        home = yield self.log_in()
        form = {"numbers": NUMBERS[0], "text": "Hello"}
        missing = yield self.request("POST", "/send", form)
        wrong = yield self.request("POST", "/send", {**form, "csrf": "0" * 32})
        no_session = yield self.request("POST", "/send", {**form, "csrf": home.csrf()}, cookie="x")
        for answer in (missing, wrong, no_session):
            self.assertEqual(answer.status, 403)
        self.assertEqual(self.messages(), [])

    # -- sending -----------------------------------------------------------------------------

    @inlineCallbacks
    def test_send_to_a_pasted_list_shows_the_ids_and_why_numbers_were_refused(self):
        home = yield self.log_in()
        pasted = "33600000001, 06 00 00 00 02;12\n+33600000003 abc"
        answer = yield self.send(home, pasted, "Hello <b>", sender="")
        self.assertEqual(answer.status, 200)
        stored = self.messages()
        self.assertEqual([m.destination for m in stored], NUMBERS[:3])
        self.assertEqual(
            answer.cells("accepted-list"),
            [
                [n, str(m.id)]
                for n, m in zip(["33600000001", "0600000002", "+33600000003"], stored, strict=True)
            ],  # fmt: skip
        )
        self.assertEqual(answer.cells("refused-list"), [["12", INVALID], ["abc", INVALID]])
        self.assertRegex(answer.text, r'id="accepted"><strong>3</strong>')

    @inlineCallbacks
    def test_send_a_csv_file_with_a_header_and_invalid_rows(self):
        home = yield self.log_in()
        csv = "Nom;Téléphone\nAlice;06 00 00 00 01\nBob;not a number\nCarl;33600000002\n"
        answer = yield self.request(
            "POST", "/send", {"csrf": home.csrf(), "text": "Bonjour"},
            files={"file": ("list.csv", csv.encode("cp1252"))},
        )  # fmt: skip
        self.assertEqual(answer.status, 200)
        stored = self.messages()
        self.assertEqual([m.destination for m in stored], NUMBERS[:2])
        self.assertEqual(
            answer.cells("accepted-list"),
            [["0600000001", str(stored[0].id)], ["33600000002", str(stored[1].id)]],
        )
        self.assertEqual(answer.cells("refused-list"), [["not a number", INVALID]])

    @inlineCallbacks
    def test_a_send_time_is_read_in_the_account_time_zone(self):
        with writing(self.store.engine) as conn:
            accounts.change(conn, "acme", timezone="America/New_York")
        home = yield self.log_in()
        answer = yield self.send(home, NUMBERS[0], "Later", send_at="2099-01-15T09:30")
        self.assertIn("to be sent at 2099-01-15 09:30", answer.text)
        (stored,) = self.messages()
        self.assertEqual(stored.due_at, 4072170600)  # 14:30 UTC (EST is UTC-5 in January)

    @inlineCallbacks
    def test_a_form_that_cannot_be_sent_comes_back_with_what_was_typed(self):
        home = yield self.log_in()
        cases = [
            ({"numbers": "", "text": "Hi"}, "Give at least one number"),
            ({"numbers": NUMBERS[0], "text": ""}, "Write the text"),
            ({"numbers": NUMBERS[0], "text": "Hi", "send_at": "tomorrow"}, "not a date"),
            ({"numbers": NUMBERS[0], "text": "Hi", "send_at": "2150-01-01T00:00"}, "not a date"),
            ({"numbers": "33600000001\n" * (web.MAX_NUMBERS + 1), "text": "Hi"}, "At most 10,000"),
        ]
        for form, said in cases:
            answer = yield self.request("POST", "/send", {"csrf": home.csrf(), **form})
            self.assertEqual(answer.status, 400)
            self.assertIn(said, answer.text)
            self.assertIn(f">{form['text']}</textarea>", answer.text)
        self.assertEqual(self.messages(), [])

    @inlineCallbacks
    def test_without_a_sender_the_account_only_registered_one_is_taken(self):
        home = yield self.log_in()
        self.assertIn("empty: ACME", home.text)
        yield self.send(home, NUMBERS[0], "Hi", sender="")
        home = yield self.log_in("other", "other")  # two senders: which one?
        answer = yield self.send(home, NUMBERS[1], "Hi", sender="")
        self.assertEqual(answer.status, 400)
        self.assertIn("Give a sender", answer.text)
        self.assertEqual(
            [(m.destination, m.source) for m in self.messages()], [(NUMBERS[0], "ACME")]
        )

    # -- messages ----------------------------------------------------------------------------

    @inlineCallbacks
    def test_the_messages_page_shows_the_account_own_messages_newest_first(self):
        home = yield self.log_in("other", "other")
        yield self.send(home, NUMBERS[2], "not yours", sender="OTHER")
        home = yield self.log_in()
        yield self.send(home, " ".join(NUMBERS[:2]), "Bonjour <script>")
        answer = yield self.request("GET", "/messages")
        rows = answer.cells("messages")
        self.assertEqual([r[1] for r in rows], [NUMBERS[1], NUMBERS[0]])
        self.assertEqual({(r[3], r[4]) for r in rows}, {("Bonjour <script>", "ACCEPTED")})
        self.assertNotIn("<script>", answer.text.split("</head>")[1])  # escaped
        self.assertNotIn("not yours", answer.text)
        delivered = yield self.request("GET", "/messages?state=DELIVERED")
        self.assertEqual(delivered.cells("messages"), [])

    @inlineCallbacks
    def test_messages_come_a_page_at_a_time(self):
        home = yield self.log_in()
        numbers = [f"336000{i:05d}" for i in range(60)]
        yield self.send(home, ",".join(numbers), "Hi")
        first = yield self.request("GET", "/messages")
        older = re.search(r'id="older" href="([^"]+)"', first.text).group(1)
        second = yield self.request("GET", unescape(older))
        shown = [r[1] for r in first.cells("messages") + second.cells("messages")]
        self.assertEqual(shown, numbers[::-1])
        self.assertNotIn('id="older"', second.text)

    @inlineCallbacks
    def test_cancel_a_waiting_message_but_not_another_account_one(self):
        home = yield self.log_in("other", "other")
        yield self.send(home, NUMBERS[2], "theirs", sender="OTHER")
        home = yield self.log_in()
        yield self.send(home, NUMBERS[0], "Later", send_at="2099-01-15T09:30")
        listing = yield self.request("GET", "/messages")
        self.assertIn(">Cancel</button>", listing.text)
        mine, theirs = (
            m.id for m in sorted(self.messages(), key=lambda m: m.account_id != self.acme.id)
        )
        answer = yield self.request("POST", "/cancel", {"csrf": listing.csrf(), "id": str(mine)})
        self.assertEqual(
            (answer.status, answer.headers["location"]), (303, "/messages?cancelled=1")
        )
        answer = yield self.request("POST", "/cancel", {"csrf": listing.csrf(), "id": str(theirs)})
        self.assertEqual(answer.headers["location"], "/messages?cancelled=0")
        states = {m.id: m.state for m in self.messages()}
        self.assertEqual((states[mine], states[theirs]), ("DELETED", "ACCEPTED"))
        after = yield self.request("GET", "/messages?cancelled=1")
        self.assertIn("The message was cancelled.", after.text)
        self.assertNotIn(">Cancel</button>", after.text)

    # -- opt-outs ----------------------------------------------------------------------------

    @inlineCallbacks
    def test_the_home_page_shows_the_size_of_the_account_opt_out_list(self):
        now = time.time()
        with writing(self.store.engine) as conn:
            optouts.add(conn, self.acme.id, [b"a" * 32, b"b" * 32], "stop", now)
            optouts.add(conn, self.other.id, [b"c" * 32], "stop", now)
            optouts.add(conn, optouts.GLOBAL, [b"d" * 32], "admin", now)
        home = yield self.log_in()
        self.assertRegex(home.text, r'id="optouts">Opt-out list: <strong>2</strong> numbers')


def _multipart(boundary: str, fields: dict, files: dict) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    for name, (filename, data) in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: text/csv\r\n\r\n')  # fmt: skip
        parts.append(head.encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def _without_value(page: str) -> str:
    return re.sub(r'id="system_id" name="system_id" value="[^"]*"', "", page)


# -- lists and keys, without the page ----------------------------------------------------------


@pytest.mark.parametrize(
    ("pasted", "numbers"),
    [
        ("33600000001\n33600000002\r\n", ["33600000001", "33600000002"]),
        ("33600000001 33600000002,0600000003", ["33600000001", "33600000002", "0600000003"]),
        ("06 00 00 00 01; +33 6 00.00.00.02", ["0600000001", "+33600000002"]),
        ("0600000001 oops", ["0600000001", "oops"]),
        (" , ;\n", []),
    ],
)
def test_numbers_of_a_pasted_list(pasted, numbers):
    assert lists.pasted(pasted) == numbers


@pytest.mark.parametrize(
    ("data", "numbers"),
    [
        (b"33600000001\n33600000002\n", ["33600000001", "33600000002"]),  # no header
        (b"\xef\xbb\xbfname,phone\nA,33600000001\nB,\n", ["33600000001"]),  # BOM, empty cell
        (b"to\tname\n06 00 00 00 01\tA\n", ["0600000001"]),
        ("Numéro;Nom\n0600000001;É\n".encode("cp1252"), ["0600000001"]),
        (b"first,second\n33600000001,x\n", ["33600000001"]),  # a header of other words
        (b"", []),
    ],
)
def test_numbers_of_a_csv_file(data, numbers):
    assert lists.from_csv(data) == numbers


def test_a_key_is_made_once_and_kept(engine):
    with writing(engine) as conn:
        first = keys.secret(conn, "web_session_key")
    with writing(engine) as conn:
        assert keys.secret(conn, "web_session_key") == first
        assert keys.secret(conn, "another") != first
    assert len(first) == 32
