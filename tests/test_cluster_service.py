"""The cluster service (smsc.cluster) on a Clock, with nodes sharing a real store: carrier
bind slots and tps shares, what a dead or unreachable node leaves, account binds and tps."""

from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select
from stores import SyncStore
from twisted.internet import defer
from twisted.internet.task import Clock

from smsc.cluster import Cluster
from smsc.config import ClusterConfig
from smsc.store import nodes, schema
from smsc.store.db import writing

NOW = 1_767_225_600.0
HEARTBEAT, LEASE = 1.0, 5.0
BINDS, TPS = 4, 100


class Store(SyncStore):
    """SyncStore with what Cluster names besides `write`: the writer its node id goes to. It
    can go down: "fail" (writes fail at once) or "hang" (writes never answer)."""

    def __init__(self, engine):
        super().__init__(engine)
        self.writer = SimpleNamespace(node_id=None)
        self.down = None

    def write(self, fn, *args, **kw):
        if self.down == "fail":
            return defer.fail(ConnectionError("the store is unreachable"))
        if self.down == "hang":
            return defer.Deferred()
        return super().write(fn, *args, **kw)


class Carrier:
    """What Cluster drives of smsc.routing.links.Carrier on one node: how many binds it keeps
    (`allow`) and its part of the tps. `peers` is this carrier on every node: each `allow`
    notes there any moment they keep more binds together than the carrier gives."""

    def __init__(self, peers: "Peers", binds=BINDS, tps=TPS):
        self.name = "orange"
        self.config = SimpleNamespace(name=self.name, binds=binds, tps=tps)
        self.tps = tps
        self.binds = 0
        self.peers = peers
        peers.append(self)

    def allow(self, n: int, reactor) -> None:
        self.binds = n
        total = sum(peer.binds for peer in self.peers)
        if total > self.config.binds:
            self.peers.overbooked.append(total)


class Peers(list):
    """This carrier on each node, and every total of their binds over the carrier's."""

    def __init__(self):
        super().__init__()
        self.overbooked: list[int] = []


@pytest.fixture
def clock():
    clock = Clock()
    clock.advance(NOW)
    return clock


@pytest.fixture
def orange():
    return Peers()


def node(engine, clock, name: str, carriers=(), join=False) -> Cluster:
    """A node, started. The first joins; the others are registered as their process would
    have (a SQLite store refuses a second node's join)."""
    config = ClusterConfig(node=name, heartbeat=HEARTBEAT, lease=LEASE)
    cluster = Cluster(Store(engine), clock, config, SimpleNamespace(shares={}))
    cluster.carriers = list(carriers)
    if join:
        cluster.join()
    else:
        now = clock.seconds()
        row = dict(name=name, started_at=now, heartbeat_at=now)
        with writing(engine) as conn:
            inserted = conn.execute(insert(schema.nodes).values(**row))
        cluster.node_id = inserted.inserted_primary_key[0]
    cluster.start()
    return cluster


def held(engine, node_id: int, kind=nodes.CARRIER) -> int:
    t = schema.leases
    with engine.connect() as conn:
        query = select(func.count()).where(t.c.kind == kind, t.c.node_id == node_id)
        return conn.execute(query).scalar()


def result(d: defer.Deferred):
    out = []
    d.addBoth(out.append)
    return out[0]


def step(clock, beats=1) -> None:
    for _ in range(beats):
        clock.advance(HEARTBEAT)


def test_a_node_alone_takes_every_bind_and_the_whole_tps(engine, clock, orange):
    carrier = Carrier(orange)
    a = node(engine, clock, "a", [carrier], join=True)

    assert a.store.writer.node_id == a.node_id  # its claims carry its id
    assert (carrier.binds, carrier.tps) == (BINDS, TPS)
    assert a.slots == {"orange": [0, 1, 2, 3]}
    assert (a.live, held(engine, a.node_id)) == (1, BINDS)


def test_a_second_node_gets_its_fair_part(engine, clock, orange):
    first, second = Carrier(orange), Carrier(orange)
    a = node(engine, clock, "a", [first], join=True)
    b = node(engine, clock, "b", [second])
    assert (second.binds, second.tps) == (0, 0)  # a holds them all

    step(clock)  # a sees two nodes: it unbinds what is over its part at once...
    assert (a.live, first.binds, first.tps) == (2, 2, TPS / 2)
    assert held(engine, a.node_id) == BINDS  # ...and gives the slots back at its next beat
    assert second.binds == 0

    step(clock)
    assert held(engine, a.node_id) == 2
    assert (b.slots, second.binds, second.tps) == ({"orange": [2, 3]}, 2, TPS / 2)
    assert orange.overbooked == []


def test_the_nodes_never_bind_more_than_the_carrier_gives_nor_above_its_tps(engine, clock, orange):
    """Three nodes on a carrier of 3 binds: two come, the last loses its store (its beats come
    after the others' in the same instant), one leaves."""
    carriers = {name: Carrier(orange, binds=3, tps=90) for name in "abc"}
    cluster = {"a": node(engine, clock, "a", [carriers["a"]], join=True)}
    for tick in range(1, 60):
        if tick == 4:
            cluster["b"] = node(engine, clock, "b", [carriers["b"]])
        if tick == 10:
            cluster["c"] = node(engine, clock, "c", [carriers["c"]])
        if tick == 20:
            cluster["c"].store.down = "fail"  # alive, but cut off from the store
        if tick == 40:
            cluster["b"].stop()
        clock.advance(HEARTBEAT / 2)
        assert sum(c.tps for c in carriers.values() if c.binds) <= 90
        assert sum(c.binds for c in carriers.values()) <= 3
    assert orange.overbooked == []
    assert [c.binds for c in carriers.values()] == [3, 0, 0]  # b gone, c cut off
    assert carriers["a"].tps == 90


def test_a_dead_nodes_slots_are_taken_over_after_the_lease(engine, clock, orange):
    first, second = Carrier(orange), Carrier(orange)
    a = node(engine, clock, "a", [first], join=True)
    b = node(engine, clock, "b", [second])
    step(clock, 3)
    assert (first.binds, second.binds) == (2, 2)

    b._loop.stop()  # b is killed: no beat, no leave
    died = clock.seconds()
    while clock.seconds() < died + LEASE - HEARTBEAT:
        step(clock)
        assert (first.binds, first.tps) == (2, TPS / 2)
    step(clock)
    assert (a.live, first.binds, first.tps) == (1, BINDS, TPS)
    assert held(engine, b.node_id) == 0


@pytest.mark.parametrize("down", ["fail", "hang"])
def test_a_node_cut_off_from_the_store_unbinds_before_its_slots_lapse(engine, clock, orange, down):
    carrier = Carrier(orange)
    a = node(engine, clock, "a", [carrier], join=True)
    a.store.down = down
    for _ in range(int(LEASE - HEARTBEAT) - 1):
        step(clock)
        assert carrier.binds == BINDS
    step(clock)  # the next beat would come when the slots lapse: too late
    assert carrier.binds == 0

    if down == "hang":
        return  # nothing answers any more
    a.store.down = None
    step(clock)
    assert (carrier.binds, carrier.tps) == (BINDS, TPS)


def test_stop_leaves_and_a_beat_answered_afterwards_binds_nothing(engine, clock, orange):
    first, second = Carrier(orange), Carrier(orange)
    a = node(engine, clock, "a", [first], join=True)
    a.store.hold = "_beat"
    step(clock)  # a beat is in the writer when the node stops
    a.stop()
    assert first.binds == 0
    assert result(a.leave()) is None
    a.store.release()
    assert first.binds == 0
    assert held(engine, a.node_id) == 0

    node(engine, clock, "b", [second])  # its slots are free at once
    assert second.binds == BINDS


def test_account_tps_is_split_by_the_sessions_each_node_serves(engine, clock):
    a = node(engine, clock, "a", join=True)
    b = node(engine, clock, "b")
    assert result(a.take_bind(5, 4)) == 0
    for _ in range(3):
        result(b.take_bind(5, 4))
    result(b.take_bind(6, 2))

    step(clock)
    # None of 6's sessions is on a at the heartbeat: one that binds there before the next
    # gets an even part (of two live nodes), rather than a cap of nothing.
    assert a.acceptor.shares == {5: 0.25, 6: 0.5}
    assert b.acceptor.shares == {5: 0.75, 6: 1.0}

    a.give_bind(5, 0)  # its session closed
    step(clock)
    assert a.acceptor.shares == {5: 0.5, 6: 0.5}
    assert b.acceptor.shares == {5: 1.0, 6: 1.0}


def test_take_bind_refuses_once_the_accounts_binds_are_held_cluster_wide(engine, clock):
    a = node(engine, clock, "a", join=True)
    b = node(engine, clock, "b")
    assert result(a.take_bind(5, 2)) == 0
    assert result(b.take_bind(5, 2)) == 1
    assert result(a.take_bind(5, 2)) is None
    assert result(b.take_bind(5, 2)) is None
    assert result(a.take_bind(6, 2)) == 0  # another account's binds

    b.give_bind(5, 0)  # not b's: nothing happens
    assert result(b.take_bind(5, 2)) is None
    a.give_bind(5, 0)
    assert result(b.take_bind(5, 2)) == 0
    assert held(engine, b.node_id, nodes.ACCOUNT) == 2
