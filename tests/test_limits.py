"""Abuse and limits (smsc.limits) on an injected clock: failed binds held longer and longer then
locked out per system_id and per address, the store's lockouts re-read, connection caps, and
the networks an account may bind from. No network, no sleeping."""

import sqlite3

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from smsc import limits
from smsc.config import LimitsConfig
from smsc.limits import BindGuard, Connections
from smsc.store import lockouts
from smsc.store.lockouts import Lockout

NAT = "198.51.100.7"  # one address many clients share
OTHER = "203.0.113.9"


def guard(clock=None, store=None, **config) -> BindGuard:
    return BindGuard(LimitsConfig(**config), clock or Clock(), store)


class FakeStore:
    """Each write and read waits until the test answers it."""

    def __init__(self):
        self.writes: list[tuple] = []  # (function name, args, Deferred)
        self.reads: list[tuple] = []

    def write(self, fn, *args):
        d = defer.Deferred()
        self.writes.append((fn.__name__, args, d))
        return d

    def read(self, fn, *args):
        d = defer.Deferred()
        self.reads.append((fn.__name__, args, d))
        return d

    def records(self) -> list[tuple]:
        return [(name, args, d) for name, args, d in self.writes if name == "record"]


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


# -- addresses and networks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::9", "2001:db8:1:2::/64"),  # the same /64: one address to the limits
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("fe80::1%eth0", "fe80::/64"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_address_key(host, key):
    assert limits.address_key(host) == key


def test_parse_address():
    assert limits.parse_address(" 192.0.2.1 ") == "192.0.2.1"
    assert limits.parse_address("2001:db8:1:2::7") == "2001:db8:1:2::/64"
    assert limits.parse_address("2001:db8:1:2::/64") == "2001:db8:1:2::/64"
    for bad in ("acme", "192.0.2.0/24", "2001:db8::/48", ""):
        with pytest.raises(ValueError, match="an IP address"):
            limits.parse_address(bad)


def test_parse_network():
    assert limits.parse_network("10.0.0.0/8") == "10.0.0.0/8"
    assert limits.parse_network("192.0.2.7") == "192.0.2.7/32"
    assert limits.parse_network("2001:DB8::/32") == "2001:db8::/32"
    with pytest.raises(ValueError, match=r"host bits set \(the network is 10.0.0.0/8\)"):
        limits.parse_network("10.1.2.3/8")
    with pytest.raises(ValueError, match="not a network"):
        limits.parse_network("10.0.0.0/33")


def test_allows():
    assert limits.allows("", "192.0.2.1")  # no networks: anywhere
    assert limits.allows("10.0.0.0/8 127.0.0.0/8", "127.0.0.1")
    assert not limits.allows("10.0.0.0/8", "127.0.0.1")
    assert limits.allows("10.0.0.0/8", "::ffff:10.1.1.1")  # IPv4 through a dual-stack socket
    assert limits.allows("2001:db8::/32", "2001:db8:5::1")
    assert not limits.allows("2001:db8::/32", "10.0.0.1")
    assert not limits.allows("10.0.0.0/8", "not-an-ip")


# -- failed binds: the delay -----------------------------------------------------------------


def test_the_delay_doubles_with_each_failure_up_to_the_maximum():
    g = guard(bind_delay=1.0, bind_delay_max=10.0, bind_failures_per_id=0)
    delays = [g.failed("acme", NAT) for _ in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_an_address_failures_weigh_less():
    """Unknown system_ids (counted against the address only): ten of them make one step."""
    g = guard(bind_delay=1.0, bind_delay_max=100.0)
    delays = [g.failed(None, NAT) for _ in range(21)]
    assert delays[:10] == [1.0] * 10 and delays[10:20] == [2.0] * 10 and delays[20] == 4.0


def test_no_delay():
    g = guard(bind_delay=0.0, bind_delay_max=0.0)
    assert g.failed("acme", NAT) == 0.0


# -- failed binds: lockouts ------------------------------------------------------------------


def test_lockout_after_the_system_ids_threshold_for_its_length():
    clock = Clock()
    g = guard(clock, bind_failures_per_id=3, lockout=60.0)
    for _ in range(2):
        g.failed("acme", NAT)
        assert g.locked("acme", NAT) is None
    g.failed("acme", NAT)
    assert g.locked("acme", NAT) == "account"
    assert g.locked("acme", OTHER) == "account"  # the account, from anywhere
    assert g.locked("shop", NAT) is None  # the address is not locked: NAT
    assert g.count() == {"account": 1, "address": 0}
    assert g.locked_accounts() == ["acme"]
    clock.advance(59.9)
    assert g.locked("acme", NAT) == "account"
    clock.advance(0.1)
    assert g.locked("acme", NAT) is None
    assert g.count() == {"account": 0, "address": 0}
    assert g.failures("acme") == 0  # a new start after a lockout


def test_one_clients_wrong_passwords_do_not_lock_out_the_others_behind_its_address():
    g = guard(bind_failures_per_id=5, bind_failures_per_address=50)
    for _ in range(20):  # far past its own threshold
        if g.locked("acme", NAT) is None:
            g.failed("acme", NAT)
    assert g.locked("acme", NAT) == "account"
    assert g.failures(address=NAT) == 5  # locked refusals are not counted as failures
    for system_id in ("shop", "bank", "kiosk"):
        assert g.locked(system_id, NAT) is None


def test_the_address_threshold_locks_the_address_for_every_system_id():
    clock = Clock()
    g = guard(clock, bind_failures_per_id=5, bind_failures_per_address=12, lockout=30.0)
    for i in range(12):  # a spray: a new system_id each time, none reaching its own threshold
        assert g.locked(f"id{i}", NAT) is None
        g.failed(f"id{i}", NAT)
    assert g.locked("anyone", NAT) == "address"
    assert g.locked("anyone", OTHER) is None
    assert g.count() == {"account": 0, "address": 1}
    assert g.locked_accounts() == []  # addresses never show in a label
    clock.advance(30)
    assert g.locked("anyone", NAT) is None


def test_a_success_forgets_the_system_ids_failures_not_the_address():
    g = guard(bind_failures_per_id=3)
    g.failed("acme", NAT)
    g.failed("acme", NAT)
    g.succeeded("acme")
    assert (g.failures("acme"), g.failures(address=NAT)) == (0, 2)
    g.failed("acme", NAT)
    g.failed("acme", NAT)
    assert g.locked("acme", NAT) is None


def test_failures_are_counted_over_the_lockout_length():
    clock = Clock()
    g = guard(clock, bind_failures_per_id=3, lockout=100.0)
    g.failed("acme", NAT)
    g.failed("acme", NAT)
    clock.advance(100)
    assert g.failures("acme") == 0
    g.failed("acme", NAT)
    g.failed("acme", NAT)
    assert g.locked("acme", NAT) is None
    g.failed("acme", NAT)
    assert g.locked("acme", NAT) == "account"


def test_thresholds_of_zero_never_lock():
    g = guard(bind_failures_per_id=0, bind_failures_per_address=0)
    for _ in range(500):
        g.failed("acme", NAT)
    assert g.locked("acme", NAT) is None


def test_unknown_system_ids_and_networks_count_against_the_address_only():
    g = guard(bind_failures_per_id=2)
    for _ in range(5):
        g.failed(None, NAT)
    assert g.locked("acme", NAT) is None and g.failures(address=NAT) == 5


def test_the_counts_are_bounded(monkeypatch):
    monkeypatch.setattr(limits, "TRACKED", 10)
    clock = Clock()
    g = guard(clock, bind_failures_per_address=0)
    for i in range(25):
        g.failed(f"id{i}", f"192.0.2.{i}")
    assert len(g._by_id) <= 10 and len(g._by_address) <= 10
    assert g.failures("id24") == 1  # the newest are kept


def test_a_lockout_is_logged_with_its_target(logged):
    g = guard(bind_failures_per_id=1)
    g.failed("acme", NAT)
    lines = [e for e in logged if e.get("log_namespace") == "smsc.limits"]
    assert len(lines) == 1 and lines[0]["kind"] == "account" and lines[0]["key"] == "acme"
    assert lines[0]["address"] == NAT


# -- the store's lockouts --------------------------------------------------------------------


def test_a_lockout_is_written_when_it_starts():
    clock = Clock()
    clock.advance(1000)
    store = FakeStore()
    g = guard(clock, store, bind_failures_per_id=2, lockout=60.0)
    g.failed("acme", NAT)
    assert store.records() == []
    g.failed("acme", NAT)
    ((_, args, _),) = store.records()
    assert args == ("account", "acme", 1000.0, 1060.0, 2)


def test_a_lift_in_the_store_reaches_the_guard_at_the_next_sync():
    clock = Clock()
    store = FakeStore()
    g = guard(clock, store, bind_failures_per_id=1, lockout=600.0)
    g.failed("acme", NAT)
    store.records()[0][2].callback(None)  # written
    g.sync()
    _, args, read = store.reads[-1]
    read.callback([Lockout("account", "acme", 0.0, 600.0, 1)])
    assert g.locked("acme", NAT) == "account"
    g.sync()
    store.reads[-1][2].callback([])  # an admin lifted it
    assert g.locked("acme", NAT) is None


def test_a_lockout_not_yet_written_survives_a_sync_that_cannot_have_seen_it():
    clock = Clock()
    store = FakeStore()
    g = guard(clock, store, bind_failures_per_id=1, lockout=600.0)
    g.sync()  # a read is out...
    g.failed("acme", NAT)  # ...when a lockout starts
    store.reads[-1][2].callback([])  # the read did not see it
    assert g.locked("acme", NAT) == "account"
    g.sync()  # another read, started before the write is confirmed
    store.records()[0][2].callback(None)
    store.reads[-1][2].callback([])
    assert g.locked("acme", NAT) == "account"  # that read may have missed it too
    g.sync()  # started after the write: the store has the last word
    store.reads[-1][2].callback([])
    assert g.locked("acme", NAT) is None


def test_a_lockout_whose_write_failed_holds_on_this_node():
    clock = Clock()
    store = FakeStore()
    g = guard(clock, store, bind_failures_per_id=1, lockout=60.0)
    g.failed("acme", NAT)
    store.records()[0][2].errback(RuntimeError("store down"))
    g.sync()
    store.reads[-1][2].callback([])
    assert g.locked("acme", NAT) == "account"
    clock.advance(60)
    g.sync()
    store.reads[-1][2].callback([])
    assert g.locked("acme", NAT) is None and g._started == {}


def test_lockouts_started_on_other_nodes_are_read():
    clock = Clock()
    store = FakeStore()
    g = guard(clock, store, lockout=600.0)
    loop = g.start(every=5.0)
    assert len(store.reads) == 1  # at once
    store.reads[-1][2].callback(
        [Lockout("account", "acme", 0, 300.0, 5), Lockout("address", NAT, 0, 300.0, 50)]
    )
    assert g.locked("acme", OTHER) == "account" and g.locked("shop", NAT) == "address"
    assert g.count() == {"account": 1, "address": 1}
    clock.advance(5)
    assert len(store.reads) == 2
    g.stop()
    assert not loop.running


def test_the_sync_purges_now_and_then():
    clock = Clock()
    store = FakeStore()
    g = guard(clock, store)
    for _ in range(limits.PURGE_EVERY + 1):
        g.sync()
    assert [name for name, _, _ in store.writes] == ["purge", "purge"]


def test_lifting_is_logged(logged):
    store = FakeStore()
    g = guard(Clock(), store, bind_failures_per_id=1)
    g.sync()
    store.reads[-1][2].callback([Lockout("account", "acme", 0, 900.0, 5)])
    g.sync()
    store.reads[-1][2].callback([])
    assert any("lifted" in e.get("log_format", "") and e.get("key") == "acme" for e in logged)


# -- connection caps -------------------------------------------------------------------------


def test_connections_per_address_cap():
    c = Connections(LimitsConfig(max_connections=0, max_connections_per_address=2), Clock())
    assert c.admit(NAT) is None and c.admit(NAT) is None
    assert c.admit(NAT) == "address"
    assert c.admit(OTHER) is None  # others go on
    assert (c.total, c.by_address) == (3, {NAT: 2, OTHER: 1})
    c.release(NAT)
    assert c.admit(NAT) is None


def test_connections_total_cap():
    c = Connections(LimitsConfig(max_connections=3, max_connections_per_address=0), Clock())
    for host in (NAT, NAT, OTHER):
        assert c.admit(host) is None
    assert c.admit("192.0.2.50") == "total"
    c.release(OTHER)
    assert c.by_address == {NAT: 2}
    assert c.admit("192.0.2.50") is None


def test_refusals_are_logged_once_a_minute_with_the_count(logged):
    clock = Clock()
    c = Connections(LimitsConfig(max_connections_per_address=1), clock)
    c.admit(NAT)
    for _ in range(5):
        assert c.admit(NAT) == "address"
    lines = [e for e in logged if e.get("log_namespace") == "smsc.limits"]
    assert len(lines) == 1 and lines[0]["address"] == NAT and lines[0]["more"] == ""
    clock.advance(limits.NOTE_EVERY)
    c.admit(NAT)
    lines = [e for e in logged if e.get("log_namespace") == "smsc.limits"]
    assert len(lines) == 2 and "4 more refused" in lines[1]["more"]


def test_refused_protocol_closes_at_once():
    from twisted.internet.testing import StringTransport

    transport = StringTransport()
    aborted = []
    transport.abortConnection = lambda: aborted.append(True)
    limits.Refused().makeConnection(transport)
    assert aborted == [True] and transport.value() == b""


# -- config ----------------------------------------------------------------------------------


def test_limits_config_defaults_let_100_sessions_from_one_address_in():
    c = LimitsConfig()
    assert c.max_connections_per_address >= 100 and c.max_connections >= 100
    assert c.bind_failures_per_address >= 10 * c.bind_failures_per_id
    assert (c.bind_failures_per_id, c.bind_failures_per_address, c.lockout) == (5, 50, 900.0)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("bind_failures_per_id = -1", "limits.bind_failures_per_id: must be 0"),
        ("max_connections_per_address = -5", "limits.max_connections_per_address: must be 0"),
        ("bind_failures_per_id = 10\nbind_failures_per_address = 5",
         "limits.bind_failures_per_address: must be at least bind_failures_per_id"),
        ("lockout = 0", "limits.lockout: must be more than 0"),
        ("bind_delay = -1", "limits.bind_delay: must be 0"),
        ("bind_delay = 5\nbind_delay_max = 1", "limits.bind_delay_max: must be at least"),
        ("max_conections = 5", "limits.max_conections: unknown key"),
        ("lockout = '15m'", "limits.lockout: expected float, got str"),
    ],
)  # fmt: skip
def test_limits_config_errors(tmp_path, text, error):
    from smsc import config

    path = tmp_path / "smsc.toml"
    path.write_text(f"[limits]\n{text}\n")
    with pytest.raises(config.ConfigError, match=error):
        config.load(path)


def test_limits_config_section(tmp_path):
    from smsc import config

    path = tmp_path / "smsc.toml"
    path.write_text("[limits]\nbind_failures_per_id = 3\nlockout = 60\nmax_connections = 0\n")
    loaded = config.load(path).limits
    assert (loaded.bind_failures_per_id, loaded.lockout, loaded.max_connections) == (3, 60.0, 0)
    assert loaded.bind_failures_per_address == 50


def test_lockout_kinds():
    assert lockouts.KINDS == ("account", "address")


def test_reading_the_lockouts_through_an_outage_logs_once(logged):
    store = FakeStore()
    g = guard(store=store)
    for _ in range(3):
        g.sync()
        store.reads.pop()[2].errback(sqlite3.OperationalError("unable to open database file"))
    warnings = [e for e in logged if e.get("what") == "reading the lockouts"]
    assert len(warnings) == 1 and "log_failure" not in warnings[0]  # one line, no traceback
    g.sync()
    store.reads.pop()[2].callback([])
    assert any("works again" in e.get("log_format", "") for e in logged)
