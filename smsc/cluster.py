"""This node among the nodes that share its store: its heartbeat, and its part of the limits
they share.

A carrier's `binds` and `tps`, and an account's `max_binds` and `tps`, hold for the cluster
as a whole:
- Carrier binds are slots leased through the store. A node holds at most its fair part,
  ceil(binds / live nodes), and gives back what is over when more nodes are live (the link
  unbinds first, the slot goes back at the next heartbeat). Each slot carries tps / binds of
  the carrier's throughput, so the nodes together never send faster than `tps`, whoever holds
  what.
- An account's session holds a slot of the account's `max_binds` while it is bound.
- An account's `tps` is split between the nodes by the sessions each serves.
A node that cannot beat for longer than a lease stops its carrier binds: by then the others
may hold its slots.
"""

import math

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .config import ClusterConfig
from .store import nodes
from .store.db import writing
from .store.faults import Quiet

_log = Logger()


class Cluster:
    def __init__(self, store, reactor, config: ClusterConfig, acceptor=None):
        self.store = store
        self.reactor = reactor
        self.config = config
        self.acceptor = acceptor
        self.carriers: list = []  # smsc.routing.links.Carrier, when the switch delivers
        self.node_id: int | None = None
        self.live = 1  # nodes with a fresh heartbeat, this one included
        self.slots: dict[str, list[int]] = {}  # carrier name -> the bind slots held here
        self._returning: list[tuple[str, int]] = []  # unbound, given back at the next beat
        self._beating = False
        self._stopped = False
        self._last_beat = 0.0  # when the last heartbeat was stored
        self._loop: LoopingCall | None = None
        self._beats = Quiet("the heartbeat", _log)

    def join(self) -> int:
        """At start, before the store's threads: register, and queue again what this node
        left in flight when it last stopped."""
        now = self.reactor.seconds()
        with writing(self.store.engine) as conn:
            self.node_id, (sent, delivered) = nodes.join(
                conn, self.config.node, now, self.config.lease
            )
        self.store.writer.node_id = self.node_id
        self._last_beat = now
        _log.info("node {node} joined the store", node=self.config.node)
        if sent or delivered:
            _log.info(
                "{sent} messages and {delivered} deliveries in flight at the last stop are "
                "queued again",
                sent=sent,
                delivered=delivered,
            )
        return self.node_id

    def start(self) -> None:
        self._loop = LoopingCall(self.beat)
        self._loop.clock = self.reactor
        self._loop.start(self.config.heartbeat, now=True)

    def stop(self) -> None:
        """No more heartbeats, no carrier bind: the first step of a shutdown."""
        self._stopped = True  # a heartbeat still in the writer must not bind again
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for carrier in self.carriers:
            carrier.allow(0, self.reactor)

    def leave(self) -> Deferred:
        """The last step before the store stops, after the dispatcher's last writes: the
        slots and the claims go to the others at once rather than after the lease."""
        return self.store.write(nodes.leave, self.node_id, self.reactor.seconds())

    # -- the heartbeat ---------------------------------------------------------------------

    def beat(self) -> None:
        now = self.reactor.seconds()
        if self._beating:  # the last one has not come back: a store that hangs
            self._lapsing(now)
            return
        self._beating = True
        returning, self._returning = self._returning, []
        d = self.store.write(self._beat, now, returning)
        d.addCallback(self._beaten, now)
        d.addErrback(self._not_beaten, returning)

    def _beat(self, conn, now: float, returning: list[tuple[str, int]]):
        """In the writer: give back, beat, and take the carrier slots up to the fair part."""
        for name, slot in returning:
            nodes.give_back(conn, self.node_id, nodes.CARRIER, name, slot)
        seen = nodes.beat(conn, self.node_id, now, self.config.lease)
        slots = {}
        for carrier in self.carriers:
            c = carrier.config
            held = sorted(seen.mine.get((nodes.CARRIER, c.name), ()))
            fair = math.ceil(c.binds / max(1, seen.live))
            while len(held) < fair:
                slot = nodes.take(
                    conn, self.node_id, nodes.CARRIER, c.name, c.binds, now, self.config.lease
                )
                if slot is None:
                    break
                held.append(slot)
            slots[c.name] = (held[:fair], held[fair:])
        return seen, slots

    def _beaten(self, result, now: float) -> None:
        self._beating = False
        self._beats.succeeded()
        if self._stopped:
            return
        seen, slots = result
        self._last_beat = now
        if seen.live != self.live:
            _log.info("{live} nodes live", live=seen.live)
        self.live = seen.live
        sent, delivered = seen.reclaimed
        if sent or delivered:
            _log.warn(
                "{sent} messages and {delivered} deliveries of stopped nodes queued again",
                sent=sent,
                delivered=delivered,
            )
        for carrier in self.carriers:
            keep, over = slots[carrier.name]
            self.slots[carrier.name] = keep
            self._returning += [(carrier.name, slot) for slot in over]
            carrier.allow(len(keep), self.reactor)
            carrier.tps = carrier.config.tps * len(keep) / carrier.config.binds
        if self.acceptor is not None:
            self.acceptor.shares = self._account_shares(seen)

    def _account_shares(self, seen: nodes.Beat) -> dict[int, float]:
        """Each account's tps split by the sessions each node serves. One with none here at
        the heartbeat may have bound since: it gets an even part until the next one."""
        shares = {}
        for (kind, key), holders in seen.held.items():
            if kind == nodes.ACCOUNT:
                mine = holders.get(self.node_id, 0)
                shares[int(key)] = mine / sum(holders.values()) if mine else 1 / seen.live
        return shares

    def _not_beaten(self, failure, returning) -> None:
        self._beating = False
        self._returning = returning + self._returning  # try again at the next beat
        self._beats.failed(failure)  # the store away: one line, not one a beat
        self._lapsing(self.reactor.seconds())

    def _lapsing(self, now: float) -> None:
        """No bind past our slots' lease: they lapse at the last beat + lease, and the next
        beat would come at that moment or later, when the others may hold them already."""
        if now + self.config.heartbeat >= self._last_beat + self.config.lease:
            _log.error("no heartbeat for a lease: the carrier binds stop until the next one")
            for carrier in self.carriers:
                carrier.allow(0, self.reactor)

    # -- account binds (smsc.server) -------------------------------------------------------

    def take_bind(self, account_id: int, max_binds: int) -> Deferred:
        """A slot of the account's binds (Deferred: its number, or None if all are held)."""
        return self.store.write(
            nodes.take, self.node_id, nodes.ACCOUNT, str(account_id), max_binds,
            self.reactor.seconds(), self.config.lease,
        )  # fmt: skip

    def give_bind(self, account_id: int, slot: int) -> None:
        d = self.store.write(nodes.give_back, self.node_id, nodes.ACCOUNT, str(account_id), slot)
        d.addErrback(lambda f: _log.failure("giving back a bind slot failed", f))
