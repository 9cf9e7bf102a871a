"""The SMPP server's binds and connections under its limits (smsc.limits), on a `Clock` and
in-memory transports, with the store underneath (SQLite, or PostgreSQL with SMSC_TEST_PG_URL):
held answers, lockouts that skip the password check, the networks of an account, and the
connection caps. The lockouts table's own functions are tested here too."""

import struct

import pytest
from stores import SyncStore
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from smsc import limits
from smsc.config import LimitsConfig, SmppConfig
from smsc.metrics import Metrics
from smsc.protocol.constants import Command, Status
from smsc.protocol.pdu import Pdu, decode, encode
from smsc.protocol.session import State
from smsc.server import SmppServer
from smsc.store import accounts, db, lockouts
from smsc.store.db import writing

NAT = "198.51.100.7"
NOW = 1_800_000_000.0


class Store(SyncStore):
    """Reads run at once too, unless `hold_reads`: then they wait for `release_reads`."""

    hold_reads = False
    waiting: list

    def read(self, fn, *args, **kw):
        if self.hold_reads:
            d = defer.Deferred()
            self.waiting.append((d, fn, args, kw))
            return d
        with self.engine.connect() as conn:
            return defer.succeed(fn(conn, *args, **kw))

    def release_reads(self) -> None:
        waiting, self.waiting = self.waiting, []
        for d, fn, args, kw in waiting:
            with self.engine.connect() as conn:
                d.callback(fn(conn, *args, **kw))

    def after_batch(self, hook):
        pass


@pytest.fixture
def store(engine, fast_scrypt):
    with writing(engine) as conn:
        for system_id in ("acme", "shop", "walled"):
            accounts.add(conn, system_id, f"{system_id}pw"[:8], NOW)
        accounts.change(conn, "walled", networks="10.0.0.0/8 192.0.2.0/24")
        accounts.add(conn, "gone", "gonepw", NOW)
        accounts.change(conn, "gone", enabled=False)
    return Store(engine)


@pytest.fixture
def checks(monkeypatch):
    """The password checks (the KDF) the server ran."""
    ran = []
    real = accounts.verify_password

    def verify(password, stored):
        ran.append(password)
        return real(password, stored)

    monkeypatch.setattr(accounts, "verify_password", verify)
    return ran


def make_server(store, **config) -> SmppServer:
    clock = Clock()
    clock.advance(NOW)
    defaults = {"bind_delay": 1.0, "bind_delay_max": 4.0, "lockout": 60.0}
    limits_config = LimitsConfig(**{**defaults, **config})
    return SmppServer(SmppConfig(), store, None, clock, Metrics(), limits_config)


class Client:
    def __init__(self, server: SmppServer, host: str, port: int = 40000):
        address = IPv4Address("TCP", host, port)
        self.protocol = server.buildProtocol(address)
        self.transport = StringTransport(peerAddress=address)
        self.aborted = False
        self.transport.abortConnection = self._abort
        self.protocol.makeConnection(self.transport)
        self.seq = 0

    def _abort(self):
        self.aborted = True

    @property
    def refused(self) -> bool:
        return isinstance(self.protocol, limits.Refused)

    def bind(self, system_id: str, password: str) -> None:
        self.seq += 1
        params = {"system_id": system_id, "password": password, "interface_version": 0x34}
        self.protocol.dataReceived(encode(Pdu(Command.bind_transceiver, self.seq, 0, params)))

    def answers(self) -> list[int]:
        """The statuses written since the last look."""
        data, out, pos = self.transport.value(), [], 0
        self.transport.clear()
        while pos < len(data):
            (length,) = struct.unpack_from(">I", data, pos)
            out.append(decode(data[pos : pos + length]).status)
            pos += length
        return out

    def close(self) -> None:
        self.protocol.connectionLost(None)


def count(server: SmppServer, reason: str) -> float:
    return server.metrics.bind_failures.labels(reason)._value.get()


def test_a_failed_binds_answer_is_held_on_the_clock(store):
    server = make_server(store)
    client = Client(server, NAT)
    client.bind("acme", "wrong")
    assert client.answers() == []
    server.clock.advance(0.99)
    assert client.answers() == []
    server.clock.advance(0.01)
    assert client.answers() == [Status.RINVPASWD]
    client.bind("acme", "wrong")  # the second failure: twice as long
    server.clock.advance(1.99)
    assert client.answers() == []
    server.clock.advance(0.01)
    assert client.answers() == [Status.RINVPASWD]
    client.bind("acme", "acmepw")  # the right one is answered at once
    assert client.answers() == [Status.ROK]
    assert server.guard.failures("acme") == 0


def test_an_unknown_system_id_and_a_network_refusal_are_held_too(store):
    server = make_server(store)
    client = Client(server, NAT)
    client.bind("nobody", "x")
    assert client.answers() == []
    server.clock.advance(1)
    assert client.answers() == [Status.RINVSYSID]
    client.bind("walled", "walledpw")
    server.clock.advance(1)
    assert client.answers() == [Status.RBINDFAIL]
    assert server.guard.failures(address=NAT) == 2 and server.guard.failures("walled") == 0


def test_lockout_then_refused_at_once_without_a_password_check(store, checks):
    server = make_server(store, bind_failures_per_id=3)
    client = Client(server, NAT)
    for _ in range(3):
        client.bind("acme", "wrong")
        server.clock.advance(4)
        assert client.answers() == [Status.RINVPASWD]
    assert len(checks) == 3
    client.bind("acme", "acmepw")  # the right password, locked out
    assert client.answers() == [Status.RBINDFAIL]  # at once: nothing advanced
    assert len(checks) == 3  # no KDF run for it
    assert client.protocol.session.state is State.OPEN
    assert (count(server, "password"), count(server, "account_locked")) == (3, 1)
    with store.engine.connect() as conn:
        (found,) = lockouts.active(conn, NOW)
    started = NOW + 8  # the third failure, after two held answers
    assert (found.kind, found.key, found.since, found.until) == (
        "account",
        "acme",
        started,
        started + 60,
    )
    assert found.failures == 3
    # Another system_id from the same address is not affected.
    other = Client(server, NAT, 40001)
    other.bind("shop", "shoppw")
    assert other.answers() == [Status.ROK]
    # Over after `lockout` seconds.
    server.clock.advance(60)
    later = Client(server, NAT, 40002)  # the first one's session init timer has run out
    later.bind("acme", "acmepw")
    assert later.answers() == [Status.ROK]


def test_binds_in_flight_when_the_lockout_starts_are_refused_whatever_their_password(store):
    """An attacker's binds sent in parallel all pass the lockout check before any fails: the
    ones whose check ends after the lockout began are refused alike, the right password too."""
    server = make_server(store, bind_failures_per_id=2)
    store.hold_reads, store.waiting = True, []
    guesses = [Client(server, NAT, 50000 + i) for i in range(4)]
    for client, password in zip(guesses, ["wrong1", "wrong2", "acmepw", "wrong3"], strict=True):
        client.bind("acme", password)
    assert len(store.waiting) == 4  # all four checks under way
    store.release_reads()
    server.clock.advance(4)
    answers = [client.answers() for client in guesses]
    assert answers == [
        [Status.RINVPASWD],
        [Status.RINVPASWD],
        [Status.RBINDFAIL],
        [Status.RBINDFAIL],
    ]
    assert server.guard.locked("acme", NAT) == "account"
    assert count(server, "account_locked") == 2


def test_a_lift_in_the_store_lets_it_bind_after_the_next_sync(store):
    server = make_server(store, bind_failures_per_id=1, lockout=3600.0)
    client = Client(server, NAT)
    client.bind("acme", "wrong")
    server.clock.advance(1)
    client.answers()
    client.bind("acme", "acmepw")
    assert client.answers() == [Status.RBINDFAIL]
    with db.writing(store.engine) as conn:
        assert lockouts.lift(conn, "account", "acme", NOW)
    server.guard.sync()
    client.bind("acme", "acmepw")
    assert client.answers() == [Status.ROK]


def test_an_address_lockout_refuses_every_system_id_from_it(store, checks):
    server = make_server(store, bind_failures_per_id=5, bind_failures_per_address=6)
    client = Client(server, NAT)
    for i in range(6):
        client.bind(f"guess{i}", "x")
        server.clock.advance(4)
    assert client.answers() == [Status.RINVSYSID] * 6
    client.bind("shop", "shoppw")
    assert client.answers() == [Status.RBINDFAIL]
    assert checks == [] and count(server, "address_locked") == 1
    elsewhere = Client(server, "192.0.2.44")
    elsewhere.bind("shop", "shoppw")
    assert elsewhere.answers() == [Status.ROK]


def test_networks_are_checked_before_the_password(store, checks):
    server = make_server(store)
    outside = Client(server, "127.0.0.1")
    outside.bind("walled", "walledpw")
    server.clock.advance(1)
    assert outside.answers() == [Status.RBINDFAIL]
    assert checks == [] and count(server, "network") == 1
    inside = Client(server, "10.20.30.40")
    inside.bind("walled", "walledpw")
    assert inside.answers() == [Status.ROK]
    also = Client(server, "192.0.2.200")
    also.bind("walled", "walledpw")
    assert also.answers() == [Status.ROK]


def test_a_disabled_account_is_refused_at_once_and_not_counted(store):
    server = make_server(store, bind_failures_per_id=1)
    client = Client(server, NAT)
    client.bind("gone", "gonepw")
    assert client.answers() == [Status.RBINDFAIL]
    assert server.guard.failures("gone") == 0 and count(server, "disabled") == 1


def test_a_held_answer_is_dropped_with_its_connection(store):
    server = make_server(store)
    client = Client(server, NAT)
    client.bind("acme", "wrong")
    held = client.protocol._held
    assert held is not None and held.active()
    client.close()
    assert not held.active()
    server.clock.advance(10)
    assert client.answers() == []


def test_a_bind_while_one_is_held_is_refused(store):
    server = make_server(store)
    client = Client(server, NAT)
    client.bind("acme", "wrong")
    client.bind("acme", "acmepw")  # no second try before the first is answered
    assert client.answers() == [Status.RALYBND]
    server.clock.advance(1)
    assert client.answers() == [Status.RINVPASWD]


def test_connections_over_the_per_address_cap_are_closed_and_the_others_work(store):
    server = make_server(store, max_connections_per_address=2)
    first, second = Client(server, NAT, 1), Client(server, NAT, 2)
    third = Client(server, NAT, 3)
    assert not first.refused and not second.refused
    assert third.refused and third.aborted and third.transport.value() == b""
    assert server.metrics.connections_refused.labels("address")._value.get() == 1
    for client in (first, second):
        client.bind("acme", "acmepw")
        assert client.answers() == [Status.ROK]
    assert not Client(server, "192.0.2.1").refused  # another address
    first.close()
    assert not Client(server, NAT, 4).refused  # a place was freed
    assert server.connections.by_address == {NAT: 2, "192.0.2.1": 1}


def test_connections_over_the_total_cap(store):
    server = make_server(store, max_connections=2)
    clients = [Client(server, f"192.0.2.{i}") for i in range(3)]
    assert [c.refused for c in clients] == [False, False, True]
    assert server.metrics.connections_refused.labels("total")._value.get() == 1
    assert server.connections.total == 2


def test_scrape_shows_lockouts_without_addresses(store):
    server = make_server(store, bind_failures_per_id=1, bind_failures_per_address=2)
    client = Client(server, NAT)
    client.bind("acme", "wrong")
    server.clock.advance(1)
    client.bind("nobody", "x")  # a second failure from the address: locked too
    server.clock.advance(4)
    server.metrics.watch(server, [])
    text = server.metrics.scrape().decode()
    assert 'smsc_lockouts{kind="account"} 1.0' in text
    assert 'smsc_lockouts{kind="address"} 1.0' in text
    assert 'smsc_account_locked{account="acme"} 1.0' in text
    assert "smsc_client_connections 1.0" in text
    assert 'smsc_bind_failures_total{reason="password"} 1.0' in text
    assert NAT not in text


# -- the lockouts table ----------------------------------------------------------------------


def test_record_list_lift_purge(engine):
    with writing(engine) as conn:
        lockouts.record(conn, "account", "acme", NOW, NOW + 60, 5)
        lockouts.record(conn, "address", NAT, NOW, NOW + 10, 50)
        lockouts.record(conn, "account", "acme", NOW + 1, NOW + 120, 6)  # again: extended
    with engine.connect() as conn:
        assert lockouts.active(conn, NOW) == [
            lockouts.Lockout("account", "acme", NOW + 1, NOW + 120, 6),
            lockouts.Lockout("address", NAT, NOW, NOW + 10, 50),
        ]
        assert [lo.key for lo in lockouts.active(conn, NOW + 10)] == ["acme"]
    with writing(engine) as conn:
        assert lockouts.purge(conn, NOW + 10) == 1
        assert not lockouts.lift(conn, "account", "shop", NOW)
        assert lockouts.lift(conn, "account", "acme", NOW)
        assert not lockouts.lift(conn, "account", "acme", NOW)
    with engine.connect() as conn:
        assert lockouts.active(conn, 0) == []


def test_lifting_an_expired_lockout_says_there_was_none(engine):
    with writing(engine) as conn:
        lockouts.record(conn, "account", "acme", NOW, NOW + 60, 5)
        assert not lockouts.lift(conn, "account", "acme", NOW + 60)
    with engine.connect() as conn:
        assert lockouts.active(conn, 0) == []  # deleted all the same


def test_the_0007_migration_keeps_accounts_and_their_messages(db_url):
    """Upgrading a store with accounts and messages to 0007 (on SQLite, a table rebuilt under
    rows that reference it would fail)."""
    empty = db.make_engine(db_url)
    try:
        db.upgrade(empty, "0006")
        with db.writing(empty) as conn:
            conn.exec_driver_sql(
                "INSERT INTO accounts (system_id, password_hash, max_binds, tps, enabled,"
                " created_at) VALUES ('acme', '-', 1, 0, true, 0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO messages (id, account_id, service_type, source_ton, source_npi,"
                " source, destination, esm_class, protocol_id, priority, registered_delivery,"
                " data_coding, body, tlvs, submitted_at, due_at, expires_at, state, updated_at)"
                " VALUES (1, 1, '', 0, 0, '36000', '33600000001', 0, 0, 0, 0, 0, '', '', 0, 0,"
                " 9e9, 'ACCEPTED', 0)"
            )
        db.upgrade(empty)
        with empty.connect() as conn:
            acme = accounts.get(conn, "acme")
            assert acme.networks == "" and lockouts.active(conn, 0) == []
    finally:
        empty.dispose()
