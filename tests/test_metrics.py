"""The metrics module: label sets (names only, never a number), the live collectors, /status,
and the queue depths counted in the background from a real store."""

import re
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from stores import sqlite_only
from twisted.internet import defer
from twisted.internet.task import Clock

from smsc import config as smsc_config
from smsc import metrics
from smsc.protocol.constants import Command, Status
from smsc.protocol.session import State
from smsc.store import accounts, credit, depth
from smsc.store.db import writing

NUMBERLIKE = re.compile(r"\d{8,}")


def samples(m: metrics.Metrics) -> dict:
    """{(name, frozenset(labels)): value} from a scrape."""
    found = {}
    for family in text_string_to_metric_families(m.scrape().decode()):
        for s in family.samples:
            found[s.name, frozenset(s.labels.items())] = s.value
    return found


def value(m, name, **labels):
    return samples(m).get((name, frozenset(labels.items())), 0.0)


def test_status_names_are_names():
    assert metrics.status_name(0) == "ESME_ROK"
    assert metrics.status_name(Status.RINVDSTADR) == "ESME_RINVDSTADR"
    assert metrics.status_name(0x7FFF1234) == "unknown"


def test_counters_and_their_labels():
    m = metrics.Metrics()
    m.submitted("alice", 0, 3)
    m.submitted("alice", 0)
    m.submitted("alice", Status.RINVDSTADR, 2)
    m.submitted("bob", Status.RTHROTTLED)
    m.client_pdus.received(Command.submit_sm, 0)
    m.client_pdus.sent(Command.submit_sm_resp, Status.RINVDSTADR)
    m.carrier_pdus.received(Command.submit_sm_resp, 0x7FFF1234)
    c = m.carrier("orange")
    c.sent.inc()
    c.receipt("DELIVERED")
    c.receipt("DELIVERED")
    c.unmatched.inc()
    c.submit_seconds.observe(0.02)
    m.submit_resp.observe(0.004)
    assert value(m, "smsc_submits_total", account="alice", result="accepted") == 4
    assert value(m, "smsc_submits_total", account="alice", result="ESME_RINVDSTADR") == 2
    assert value(m, "smsc_submits_total", account="bob", result="ESME_RTHROTTLED") == 1
    pdu = {"side": "client", "command": "submit_sm", "status": "ESME_ROK"}
    assert value(m, "smsc_pdus_received_total", **pdu) == 1
    resp = {"side": "client", "command": "submit_sm_resp", "status": "ESME_RINVDSTADR"}
    assert value(m, "smsc_pdus_sent_total", **resp) == 1
    odd = {"side": "carrier", "command": "submit_sm_resp", "status": "unknown"}
    assert value(m, "smsc_pdus_received_total", **odd) == 1
    assert value(m, "smsc_messages_sent_total", carrier="orange") == 1
    assert value(m, "smsc_receipts_total", carrier="orange", state="DELIVERED") == 2
    assert value(m, "smsc_receipts_unmatched_total", carrier="orange") == 1
    assert value(m, "smsc_carrier_submit_seconds_count", carrier="orange") == 1
    assert value(m, "smsc_submit_resp_seconds_count") == 1
    for (name, labels), _ in samples(m).items():
        for key, v in labels:
            if key != "le":  # a histogram's bucket bounds are the one numeric label
                assert not NUMBERLIKE.search(v), (name, key, v)
                assert not v.replace(".", "").isdigit(), (name, key, v)


def test_registries_are_separate():
    one, two = metrics.Metrics(), metrics.Metrics()
    one.submitted("alice", 0)
    assert value(one, "smsc_submits_total", account="alice", result="accepted") == 1
    assert value(two, "smsc_submits_total", account="alice", result="accepted") == 0


def _session(system_id, state):
    return SimpleNamespace(account=SimpleNamespace(system_id=system_id),
                           session=SimpleNamespace(state=state))  # fmt: skip


def _link(bound=True, window=10, free=7):
    return SimpleNamespace(session=SimpleNamespace(bound=bound, out_window=window, out_free=free))


def _carrier(name, links, binds=2, paused=False, tps=50.0):
    carrier = SimpleNamespace(name=name, links=links, config=SimpleNamespace(binds=binds), tps=tps)
    carrier.paused = lambda now: paused
    factories = [SimpleNamespace(link=link, continueTrying=True, binds=1, carrier=carrier)
                 for link in links]  # fmt: skip
    factories.append(SimpleNamespace(link=None, continueTrying=True, binds=0, carrier=carrier))
    carrier.factories = factories
    return carrier


def test_live_gauges_and_status():
    server = SimpleNamespace(
        sessions={
            1: [_session("alice", State.BOUND_TRX), _session("alice", State.BOUND_TX)],
            2: [_session("bob", State.BOUND_RX), _session("bob", State.OPEN)],
        }
    )
    carriers = [_carrier("orange", [_link(free=7), _link(free=10)]), _carrier("sfr", [], tps=0)]
    cluster = SimpleNamespace(live=3, config=SimpleNamespace(node="smsc-2"))
    m = metrics.Metrics()
    m.watch(server, carriers, cluster)
    assert value(m, "smsc_binds", account="alice", mode="transceiver") == 1
    assert value(m, "smsc_binds", account="alice", mode="transmitter") == 1
    assert value(m, "smsc_binds", account="bob", mode="receiver") == 1
    assert value(m, "smsc_carrier_links_bound", carrier="orange") == 2
    assert value(m, "smsc_carrier_links_bound", carrier="sfr") == 0
    assert value(m, "smsc_carrier_window_in_use", carrier="orange") == 3
    assert value(m, "smsc_carrier_tps", carrier="orange") == 50.0
    assert value(m, "smsc_carrier_tps", carrier="sfr") == 0.0
    assert value(m, "smsc_cluster_nodes") == 3
    found = metrics.status(server, carriers, Clock(), cluster)
    assert found["node"] == {"name": "smsc-2", "live": 3}
    assert found["binds"] == {
        "alice": {"transmitter": 1, "receiver": 0, "transceiver": 1},
        "bob": {"transmitter": 0, "receiver": 1, "transceiver": 0},
    }
    orange, sfr = found["carriers"]
    assert orange == {
        "name": "orange",
        "links": [
            {"state": "bound", "window_in_use": 3},
            {"state": "bound", "window_in_use": 0},
            {"state": "connecting", "window_in_use": 0},
        ],
        "bound": 2,
        "binds": 2,
        "throttled": False,
    }
    assert sfr["bound"] == 0 and sfr["links"] == [{"state": "connecting", "window_in_use": 0}]


def test_link_states():
    clock = Clock()
    carrier = _carrier("orange", [_link()], paused=True)
    factory = carrier.factories[0]
    assert metrics.link_state(factory, clock) == "throttled"
    factory.link = None
    assert metrics.link_state(factory, clock) == "reconnecting"
    factory.continueTrying = False
    assert metrics.link_state(factory, clock) == "down"


class ReadStore:
    def __init__(self, engine):
        self.engine = engine
        self.reads = 0

    def read(self, fn, *args):
        self.reads += 1
        with self.engine.connect() as conn:
            return defer.succeed(fn(conn, *args))


def _queue(engine, now):
    """Messages in each state, and outbox rows."""
    with writing(engine) as conn:
        account = accounts.add(conn, "alice", "secret", now)
        rows = [
            ("ACCEPTED", now - 5), ("ACCEPTED", now - 1), ("ACCEPTED", now + 3600),
            ("SENDING", now), ("ENROUTE", now), ("ENROUTE", now), ("ENROUTE", now),
            ("DELIVERED", now), ("UNDELIVERABLE", now),
        ]  # fmt: skip
        for state, due_at in rows:
            conn.execute(
                text(
                    "INSERT INTO messages (account_id, service_type, source_ton, source_npi,"
                    " source, destination, esm_class, protocol_id, priority,"
                    " registered_delivery, data_coding, body, tlvs, submitted_at, due_at,"
                    " expires_at, state, updated_at) VALUES (:a, '', 1, 1, '36180',"
                    " '33600000001', 0, 0, 0, 0, 0, :b, :e, :now, :due, :exp, :st, :now)"
                ),
                {
                    "a": account.id,
                    "now": now,
                    "due": due_at,
                    "exp": now + 86400,
                    "st": state,
                    "b": b"h",
                    "e": b"",
                },  # fmt: skip
            )
        for state in ("PENDING", "PENDING", "SENDING", "DONE"):
            conn.execute(
                text(
                    "INSERT INTO outbox (account_id, source_ton, source_npi, source, destination,"
                    " esm_class, data_coding, body, tlvs, state, attempts, created_at, due_at,"
                    " expires_at) VALUES (:a, 1, 1, '33600000001', '36180', 4, 0, :e, :e,"
                    " :st, 0, :now, :now, :exp)"
                ),
                {"a": account.id, "now": now, "exp": now + 86400, "st": state, "e": b""},
            )


def test_depths_refreshed_in_the_background(engine, fast_scrypt):
    clock = Clock()
    clock.advance(1_000_000)
    _queue(engine, clock.seconds())
    store = ReadStore(engine)
    m = metrics.Metrics()
    loop = m.refresh_depths(store, clock, every=15.0)
    assert store.reads == 2  # the depths, the balances
    assert value(m, "smsc_queue_depth", state="waiting") == 2
    assert value(m, "smsc_queue_depth", state="scheduled") == 1
    assert value(m, "smsc_queue_depth", state="in_flight") == 4
    assert value(m, "smsc_outbox_depth") == 3
    for _ in range(5):  # scrapes read the cached values: no query
        m.scrape()
    assert store.reads == 2
    clock.advance(3601)  # the scheduled one is due now, counted at the next refresh
    assert store.reads == 4
    assert value(m, "smsc_queue_depth", state="waiting") == 3
    assert value(m, "smsc_queue_depth", state="scheduled") == 0
    m.stop()
    assert not loop.running


def test_prepaid_balances_refreshed_in_the_background(engine, fast_scrypt):
    clock = Clock()
    with writing(engine) as conn:
        for name, low in (("alice", 1000), ("bob", 0)):
            account = accounts.add(conn, name, "secret", clock.seconds())
            accounts.change(conn, name, prepaid=True, low_balance=low)
            credit.top_up(conn, account.id, 500, clock.seconds())
        accounts.add(conn, "carol", "secret", clock.seconds())  # postpaid: no balance shown
    m = metrics.Metrics()
    m.refresh_depths(ReadStore(engine), clock)
    assert value(m, "smsc_account_balance_credits", account="alice") == 0.5
    assert value(m, "smsc_account_low_balance", account="alice") == 1
    assert value(m, "smsc_account_low_balance", account="bob") == 0
    assert ("smsc_account_balance_credits", frozenset({("account", "carol")})) not in samples(m)
    m.stop()


@sqlite_only  # PostgreSQL plans by its statistics: the same query may scan a small table
def test_depth_counts_use_the_queue_indexes(engine):
    with engine.connect() as conn:
        for name, sql in depth._QUERIES.items():
            plan = " ".join(
                str(row[-1]) for row in conn.exec_driver_sql(
                    "EXPLAIN QUERY PLAN " + sql.replace(":now", "0").replace(":cap", "10")
                )
            )  # fmt: skip
            index = "outbox_queue" if name == "outbox" else "messages_queue"
            assert f"COVERING INDEX {index}" in plan, (name, plan)


def test_metrics_config(tmp_path):
    path = tmp_path / "smsc.toml"
    path.write_text("")
    assert smsc_config.load(path).metrics is None
    path.write_text("[metrics]\nport = 0\n")
    assert smsc_config.load(path).metrics == smsc_config.MetricsConfig("127.0.0.1", 0)
    path.write_text("[metrics]\n")
    assert smsc_config.load(path).metrics.port == 9100


def test_buckets_count_as_a_prometheus_histogram_does():
    bounds = (0.01, 0.1, 1.0)
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = metrics.Buckets("x_seconds", "x", bounds, "carrier")
    ours.register(mine)
    reference = Histogram("x_seconds", "x", ["carrier"], buckets=bounds, registry=theirs)
    for value in (0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0, 0.01):
        mine.labels("orange").observe(value)
        reference.labels("orange").observe(value)
    for le in ("0.01", "0.1", "1.0", "+Inf"):
        labels = {"carrier": "orange", "le": le}
        assert ours.get_sample_value("x_seconds_bucket", labels) == theirs.get_sample_value(
            "x_seconds_bucket", labels
        )
    for suffix in ("_count", "_sum"):
        assert ours.get_sample_value("x_seconds" + suffix, {"carrier": "orange"}) == (
            theirs.get_sample_value("x_seconds" + suffix, {"carrier": "orange"})
        )
