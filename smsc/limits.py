"""Abuse and limits on the SMPP port (README, "Abuse and limits"):

- failed binds are answered later and later, then locked out, per system_id and per source
  address (`BindGuard`); a locked one is refused at once, without a password check;
- an account may bind only from its networks (`allows`);
- client connections are capped in all and per source address (`Connections`).

Failures are counted in memory, on this node. A lockout is written to the store when it
starts, and every node reads the store's lockouts every `SYNC` seconds: so a lockout holds on
every node sharing the store, and one an admin lifts (`smsc lockout lift`) ends everywhere
within seconds. Time is the injected clock's (the reactor, or a `task.Clock` in tests).
"""

import functools
import ipaddress
import math
from dataclasses import dataclass

from twisted.internet.protocol import Protocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .config import LimitsConfig
from .store import lockouts
from .store.faults import Quiet
from .store.lockouts import ACCOUNT, ADDRESS, KINDS

_log = Logger()
SYNC = 5.0  # seconds between two reads of the lockouts table (a lift reaches a server so fast)
PURGE_EVERY = 12  # syncs between two purges of the lockouts that are over
TRACKED = 100_000  # most keys whose failures are counted at once (the oldest go first)
NOTE_EVERY = 60.0  # seconds between two log lines about one address refused over a cap
# Why a client bind is refused (the reasons of smsc_bind_failures_total): the account check's
# (unknown system_id, wrong password, outside the account's networks, account disabled), a
# lockout's, the account's bind limit.
BIND_REFUSALS = ("system_id", "password", "network", "disabled", "account_locked",
                 "address_locked", "max_binds")  # fmt: skip


def address_key(host: str) -> str:
    """What limits count a source address as: an IPv4 address as it is, an IPv6 one by its /64
    (one subscriber's network: it has many addresses), an IPv4-mapped IPv6 one as its IPv4
    address; something that is not an IP address as it is."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def parse_address(text: str) -> str:
    """An address given to the CLI (an IP address, or an IPv6 /64) as `address_key` counts it;
    ValueError when it is neither."""
    text = text.strip()
    if "/" in text:
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError:
            network = None
        if network is None or network.version != 6 or network.prefixlen != 64:
            raise ValueError(f"{text!r}: an IP address (or the /64 of an IPv6 one)")
        return str(network)
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r}: an IP address (or the /64 of an IPv6 one)") from None
    return address_key(text)


def parse_network(text: str) -> str:
    """A network an account may bind from, canonical (`10.0.0.0/8`; an address alone is its
    /32 or /128); ValueError saying what is wrong."""
    try:
        return str(ipaddress.ip_network(text.strip()))
    except ValueError as e:
        if "host bits set" in str(e):
            wider = ipaddress.ip_network(text.strip(), strict=False)
            raise ValueError(f"{text}: has host bits set (the network is {wider})") from None
        raise ValueError(
            f"{text}: not a network (10.0.0.0/8, 2001:db8::/32 or an address)"
        ) from None


@functools.lru_cache(maxsize=1024)
def _networks(text: str) -> tuple:
    return tuple(ipaddress.ip_network(n) for n in text.split())


def allows(networks: str, host: str) -> bool:
    """Whether an account whose networks are `networks` (CIDRs separated by spaces; empty:
    anywhere) may bind from `host`."""
    if not networks:
        return True
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in _networks(networks))


@dataclass(slots=True)
class _Failures:
    n: int
    first: float  # failures are counted over `lockout` seconds from the first


class BindGuard:
    """Failed binds by system_id and by source address: how long to hold the answer to one, and
    the lockouts they start. `store` (a smsc.store.Store, or a stand-in with `write` and
    `read`) records and re-reads the lockouts; None keeps them in memory only."""

    def __init__(self, config: LimitsConfig, clock, store=None):
        self.config = config
        self.clock = clock
        self.store = store
        self._by_id: dict[str, _Failures] = {}
        self._by_address: dict[str, _Failures] = {}
        # (kind, key) → until: the store's lockouts as last read, and those started here since.
        self.lockouts: dict[tuple[str, str], float] = {}
        # The lockouts started here → the sync during which their write was confirmed (None:
        # not yet; inf: it failed, held here until it ends). Until a sync that began after the
        # write read the store, the store cannot be trusted to show them.
        self._started: dict[tuple[str, str], float | None] = {}
        self._syncs = 0
        self._reads = Quiet("reading the lockouts", _log)  # one line an outage
        self._loop: LoopingCall | None = None

    # -- binds -----------------------------------------------------------------------------

    def locked(self, system_id: str, address: str) -> str | None:
        """The kind of the lockout refusing a bind of `system_id` from `address`, if any."""
        now = self.clock.seconds()
        for kind, key in ((ACCOUNT, system_id), (ADDRESS, address)):
            until = self.lockouts.get((kind, key))
            if until is not None:
                if until > now:
                    return kind
                del self.lockouts[kind, key]
        return None

    def failed(self, system_id: str | None, address: str) -> float:
        """Count a failed bind from `address`, and of `system_id` unless None (an unknown
        system_id, or a bind from outside the account's networks: nothing the account's owner
        did). Starts the lockouts it brings to their threshold; returns the seconds to hold
        its answer."""
        now = self.clock.seconds()
        c = self.config
        n_address = self._count(self._by_address, address, now)
        n_id = 0 if system_id is None else self._count(self._by_id, system_id, now)
        if system_id is not None and c.bind_failures_per_id and n_id >= c.bind_failures_per_id:
            del self._by_id[system_id]
            self._lock(ACCOUNT, system_id, n_id, now, address)
        if c.bind_failures_per_address and n_address >= c.bind_failures_per_address:
            del self._by_address[address]
            self._lock(ADDRESS, address, n_address, now, address)
        return self.delay(n_id, n_address)

    def succeeded(self, system_id: str) -> None:
        """The right password: the system_id's failures are forgotten (not its address's,
        which other clients share)."""
        self._by_id.pop(system_id, None)

    def delay(self, n_id: int, n_address: int) -> float:
        """The hold of a failed bind's answer after `n_id` failures of its system_id and
        `n_address` of its address: bind_delay, doubled for each failure after the first, at
        most bind_delay_max. An address's failures weigh as much less as its threshold is
        higher (by default 10 of them as one of a system_id's)."""
        c = self.config
        if not c.bind_delay:
            return 0.0
        per_id = c.bind_failures_per_id or LimitsConfig.bind_failures_per_id
        per_address = c.bind_failures_per_address or LimitsConfig.bind_failures_per_address
        steps = max(n_id, math.ceil(n_address * per_id / per_address), 1)
        return min(c.bind_delay_max, c.bind_delay * 2.0 ** min(steps - 1, 64))

    def _count(self, table: dict[str, _Failures], key: str, now: float) -> int:
        found = table.get(key)
        if found is None or now - found.first >= self.config.lockout:
            if found is None and len(table) >= TRACKED:
                self._prune(table, now)
            found = table[key] = _Failures(0, now)
        found.n += 1
        return found.n

    def _prune(self, table: dict[str, _Failures], now: float) -> None:
        window = self.config.lockout
        for key in [k for k, f in table.items() if now - f.first >= window]:
            del table[key]
        while len(table) >= TRACKED:  # still full: the oldest go
            del table[next(iter(table))]

    def _lock(self, kind: str, key: str, failures: int, now: float, address: str) -> None:
        until = now + self.config.lockout
        self.lockouts[kind, key] = until
        self._started[kind, key] = None
        _log.warn(
            "{kind} {key} locked out for {seconds:g} s after {failures} failed binds "
            "(the last from {address}); `smsc lockout lift` ends it",
            kind=kind,
            key=key,
            seconds=self.config.lockout,
            failures=failures,
            address=address,
        )
        if self.store is None:
            return
        d = self.store.write(lockouts.record, kind, key, now, until, failures)
        d.addCallback(self._written, (kind, key))
        d.addErrback(self._not_written, (kind, key))

    def _written(self, _, key: tuple[str, str]) -> None:
        if key in self._started:
            self._started[key] = self._syncs

    def _not_written(self, failure, key: tuple[str, str]) -> None:
        _log.failure("recording the lockout of {kind} {key} failed", failure, kind=key[0],
                     key=key[1])  # fmt: skip
        if key in self._started:
            self._started[key] = math.inf

    # -- the store's lockouts --------------------------------------------------------------

    def start(self, every: float = SYNC) -> LoopingCall:
        """Read the store's lockouts now and every `every` seconds."""
        self._loop = LoopingCall(self.sync)
        self._loop.clock = self.clock
        self._loop.start(every, now=True)
        return self._loop

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def sync(self):
        """Read the store's lockouts (and now and then purge those that are over)."""
        self._syncs += 1
        now = self.clock.seconds()
        self._prune(self._by_id, now)
        self._prune(self._by_address, now)
        if self.store is None:
            return None
        if self._syncs % PURGE_EVERY == 1:
            p = self.store.write(lockouts.purge, now)
            p.addErrback(self._reads.failed, "purging the lockouts")
        d = self.store.read(lockouts.active, now)
        d.addCallback(self.use, self._syncs)
        d.addCallbacks(lambda _: self._reads.succeeded(), self._reads.failed)
        return d

    def use(self, found: list[lockouts.Lockout], sync: int) -> None:
        """The store's lockouts, as read by the sync numbered `sync`: they replace the ones
        held here, except those started here that this read may not have seen yet."""
        now = self.clock.seconds()
        table = {(lo.kind, lo.key): lo.until for lo in found}
        for key, confirmed in list(self._started.items()):
            until = self.lockouts.get(key)
            if until is None or until <= now:
                del self._started[key]
            elif confirmed is None or confirmed >= sync:
                table[key] = max(until, table.get(key, until))
            else:
                del self._started[key]  # the store has the last word on it now
        for (kind, key), until in self.lockouts.items():
            if (kind, key) not in table and until > now:
                _log.info("lockout of {kind} {key} lifted", kind=kind, key=key)
        self.lockouts = table

    # -- what the metrics and tests read ---------------------------------------------------

    def count(self) -> dict[str, int]:
        """Lockouts in force, by kind."""
        now = self.clock.seconds()
        found = dict.fromkeys(KINDS, 0)
        for (kind, _), until in self.lockouts.items():
            if until > now:
                found[kind] += 1
        return found

    def locked_accounts(self) -> list[str]:
        now = self.clock.seconds()
        return sorted(k for (kind, k), u in self.lockouts.items() if kind == ACCOUNT and u > now)

    def failures(self, system_id: str | None = None, address: str | None = None) -> int:
        """The failures counted now for a system_id or an address."""
        table, key = (self._by_id, system_id) if address is None else (self._by_address, address)
        found = table.get(key)
        if found is None or self.clock.seconds() - found.first >= self.config.lockout:
            return 0
        return found.n


class Connections:
    """The client connections open, in all and by source address (`address_key`), and the
    caps on them: `admit` says which cap refuses a new one, if any."""

    CAPS = ("total", "address")

    def __init__(self, config: LimitsConfig, clock):
        self.config = config
        self.clock = clock
        self.total = 0
        self.by_address: dict[str, int] = {}
        self._noted: dict[tuple[str, str], list] = {}  # (cap, address) → [last line, refused]

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`, or name the cap it is over ("total",
        "address"); the first refusal of an address at a cap is logged, then at most a line a
        minute saying how many more."""
        c = self.config
        if c.max_connections and self.total >= c.max_connections:
            cap, limit = "total", c.max_connections
        elif (
            c.max_connections_per_address
            and self.by_address.get(address, 0) >= c.max_connections_per_address
        ):
            cap, limit = "address", c.max_connections_per_address
        else:
            self.total += 1
            self.by_address[address] = self.by_address.get(address, 0) + 1
            return None
        self._note(cap, limit, address)
        return cap

    def release(self, address: str) -> None:
        self.total -= 1
        left = self.by_address.get(address, 1) - 1
        if left > 0:
            self.by_address[address] = left
        else:
            self.by_address.pop(address, None)

    def _note(self, cap: str, limit: int, address: str) -> None:
        now = self.clock.seconds()
        noted = self._noted.get((cap, address))
        if noted is not None and now - noted[0] < NOTE_EVERY:
            noted[1] += 1
            return
        if len(self._noted) >= TRACKED:
            self._noted = {k: v for k, v in self._noted.items() if now - v[0] < NOTE_EVERY}
        more = f" ({noted[1]} more refused since the last line)" if noted and noted[1] else ""
        what = "in all" if cap == "total" else "from one address"
        _log.warn(
            "connection from {address} refused: {limit} connections {what} already open{more}",
            address=address,
            limit=limit,
            what=what,
            more=more,
        )
        self._noted[cap, address] = [now, 0]


class Refused(Protocol):
    """A connection over a cap: closed as soon as it is made, nothing read or written."""

    def connectionMade(self) -> None:
        self.transport.abortConnection()
