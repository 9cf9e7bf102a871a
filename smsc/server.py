"""The SMPP server: client sessions (ESMEs) bind here, and their requests meet the accept path
and the store."""

import hashlib
import hmac
import os
from functools import partial
from typing import NamedTuple

from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from . import addresses, limits
from .accept import Acceptor, check_body
from .config import LimitsConfig, SmppConfig
from .protocol import smpptime
from .protocol.adapter import SessionProtocol
from .protocol.constants import INTERFACE_VERSION, Command, Status, Tag
from .protocol.pdu import DistList, Pdu, Unsuccess, zero_params
from .protocol.session import Closed, Response, State, Timeout, Timers
from .store import accounts, messages
from .store.accounts import Account
from .store.faults import describe, transient
from .store.messages import FINAL, SMPP_STATE
from .store.service import Store

_log = Logger()
_SUBMIT_ZERO = zero_params(Command.submit_sm)
_RECEIVING = frozenset({State.BOUND_RX, State.BOUND_TRX})
_COUNTED = frozenset({"system_id", "password", "network"})  # failures towards a lockout


class BindRefusal(NamedTuple):
    status: Status
    reason: str  # one of limits.BIND_REFUSALS


class ClientSession(SessionProtocol):
    """One ESME connection."""

    def __init__(self, server: "SmppServer", **kw):
        super().__init__(server.clock, **kw)
        self.server = server
        self.account: Account | None = None
        self.bind_slot: int | None = None  # the cluster's slot of the account's binds
        self.peer = "?"
        self.host = "?"  # the peer's IP address
        self.address = "?"  # as the limits count it (limits.address_key); set by the factory
        self._held = None  # a failed bind's answer, held (limits.BindGuard.delay)
        if server.metrics is not None:
            self.pdus = server.metrics.client_pdus

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.host = getattr(peer, "host", "?")
        self.peer = f"{self.host}:{getattr(peer, 'port', '?')}"
        # Back-pressure: while answers to this peer pile up unread (beyond the transport's
        # buffer), stop reading its requests. A client that sends without reading then waits
        # on TCP, instead of growing this process's memory by what it sends.
        self.transport.registerProducer(self.transport, True)
        super().connectionMade()

    def connectionLost(self, reason=None) -> None:
        if self._held is not None and self._held.active():
            self._held.cancel()
        super().connectionLost(reason)
        self.server.connections.release(self.address)
        self.server.clients.discard(self)

    def on_request(self, pdu: Pdu) -> None:
        try:
            self._HANDLERS[pdu.command](self, pdu)
        except Exception:
            # A bug in one handler costs that request an RSYSERR, not the whole connection
            # (with the answers still owed for messages that are committed already).
            _log.failure("{command} failed", command=pdu.command.name)
            self.answer(pdu, Status.RSYSERR)

    def on_response(self, event: Response) -> None:
        sender, item_id = event.context  # our deliver_sm: an outbox row
        sender.answered(item_id, event.pdu.status)

    def on_timeout(self, event: Timeout) -> None:
        sender, item_id = event.context
        sender.lost(item_id)

    def on_closed(self, event: Closed) -> None:
        # A transport with a producer registered never completes loseConnection.
        self.transport.unregisterProducer()
        for sender, item_id in event.unanswered:
            sender.lost(item_id)
        if self.account is not None:
            self.server.unbound(self)
            if self.bind_slot is not None:
                self.server.cluster.give_bind(self.account.id, self.bind_slot)
        _log.info(
            "session {peer} {system_id} closed: {reason}",
            peer=self.peer,
            system_id=self.account.system_id if self.account else "-",
            reason=event.reason,
        )

    def answer(self, pdu: Pdu, status: int = 0, params=None) -> None:
        """Respond now and write at once (the cold paths answer one at a time)."""
        self.respond(pdu, status, params)
        self.flush()

    # -- bind ------------------------------------------------------------------------------

    def _bind(self, pdu: Pdu) -> None:
        system_id = pdu.params["system_id"]
        locked = self.server.guard.locked(system_id, self.address)
        if locked is not None:  # at once, without the password check (its cost is the point)
            self.server.bind_failed(f"{locked}_locked")
            return self.answer(pdu, Status.RBINDFAIL)
        d = self.server.authenticate(system_id, pdu.params["password"], self.host)
        d.addCallback(self._bind_checked, pdu)
        d.addErrback(self._failed, pdu, "bind")

    def _bind_checked(self, result: Account | BindRefusal, pdu: Pdu) -> None:
        if self.session.state is State.CLOSED:
            return
        locked = self.server.guard.locked(pdu.params["system_id"], self.address)
        if locked is not None:
            # Locked out while its password was checked (binds sent in parallel): refused like
            # the binds after it, whatever the check said, so that it tells nothing.
            self.server.bind_failed(f"{locked}_locked")
            return self.answer(pdu, Status.RBINDFAIL)
        if isinstance(result, BindRefusal):
            return self._bind_failed(pdu, result)
        self.server.guard.succeeded(result.system_id)
        status = self.server.bound(self, result)
        if status:
            self.server.bind_failed("max_binds")
            return self._bind_refused(pdu, status)
        self.account = result  # counted from here on: on_closed gives the bind back
        if self.server.cluster is None:
            return self._bind_done(pdu)
        # The account's binds are counted over the whole cluster: a slot of its max_binds.
        d = self.server.cluster.take_bind(result.id, result.max_binds)
        d.addErrback(self._slot_failed)
        d.addCallback(self._bind_slot, pdu)

    def _slot_failed(self, failure) -> None:
        _log.failure("taking a bind slot failed", failure)

    def _bind_slot(self, slot: int | None, pdu: Pdu) -> None:
        if self.session.state is State.CLOSED:
            if slot is not None:
                self.server.cluster.give_bind(self.account.id, slot)
            return
        if slot is None:
            self.server.unbound(self)
            self.account = None
            self.server.bind_failed("max_binds")
            return self._bind_refused(pdu, Status.RBINDFAIL)
        self.bind_slot = slot
        self._bind_done(pdu)

    def _bind_refused(self, pdu: Pdu, status: Status, reason: str = "") -> None:
        _log.info(
            "bind refused for {system_id} from {peer}: {status}{why}",
            system_id=pdu.params["system_id"],
            peer=self.peer,
            status=Status(status).name,
            why=f" ({reason})" if reason else "",
        )
        self.answer(pdu, status)

    def _bind_failed(self, pdu: Pdu, refusal: "BindRefusal") -> None:
        """A bind refused by the account check: counted (limits.BindGuard), its answer held
        the longer the more binds failed before it."""
        self.server.bind_failed(refusal.reason)
        if refusal.reason not in _COUNTED:  # the right password (a disabled account)
            return self._bind_refused(pdu, *refusal)
        system_id = pdu.params["system_id"] if refusal.reason == "password" else None
        delay = self.server.guard.failed(system_id, self.address)
        if delay <= 0:
            return self._bind_refused(pdu, *refusal)
        self._held = self.clock.callLater(delay, self._bind_held, pdu, refusal)

    def _bind_held(self, pdu: Pdu, refusal: "BindRefusal") -> None:
        self._held = None
        if self.session.state is not State.CLOSED:
            self._bind_refused(pdu, *refusal)

    def _bind_done(self, pdu: Pdu) -> None:
        tlvs = {}
        if pdu.params["interface_version"] >= INTERFACE_VERSION:
            tlvs[Tag.sc_interface_version] = INTERFACE_VERSION
        self.respond(pdu, 0, {"system_id": self.server.config.system_id}, tlvs)
        self.flush()
        if self.session.state in _RECEIVING and self.server.outbox is not None:
            self.server.outbox.wake()  # what waited for this client can go now
        _log.info(
            "bound {system_id} from {peer} as {mode}",
            system_id=self.account.system_id,
            peer=self.peer,
            mode=pdu.command.name.removeprefix("bind_"),
        )

    # -- messages --------------------------------------------------------------------------

    def _submit_sm(self, pdu: Pdu) -> None:
        p = pdu.params
        self.server.acceptor.submit(
            self.account,
            p,
            pdu.tlvs,
            [(p["dest_addr_ton"], p["dest_addr_npi"], p["destination_addr"])],
            partial(self._submitted, pdu, self.clock.seconds()),
        )

    def _data_sm(self, pdu: Pdu) -> None:
        p = {**_SUBMIT_ZERO, **pdu.params}
        self.server.acceptor.submit(
            self.account,
            p,
            pdu.tlvs,
            [(p["dest_addr_ton"], p["dest_addr_npi"], p["destination_addr"])],
            partial(self._submitted, pdu, self.clock.seconds()),
        )

    def _submitted(self, pdu: Pdu, arrived: float, status: int, ids: list[int], refused) -> None:
        self.respond(pdu, status, {"message_id": str(ids[0])} if ids else None)
        self.server.dirty.add(self)
        if self.server.submit_resp is not None:
            self.server.submit_resp.observe(self.clock.seconds() - arrived)

    def _submit_multi(self, pdu: Pdu) -> None:
        dests = pdu.params["dest_address"]
        if not dests:
            return self.answer(pdu, Status.RINVNUMDESTS)
        lists = [Unsuccess(0, 0, d.name, Status.RINVDLNAME) for d in dests if type(d) is DistList]
        self.server.acceptor.submit(
            self.account,
            pdu.params,
            pdu.tlvs,
            [tuple(d) for d in dests if type(d) is not DistList],
            partial(self._multi_submitted, pdu, lists, self.clock.seconds()),
        )

    def _multi_submitted(self, pdu, lists, arrived, status, ids, refused) -> None:
        unsuccess = lists + [Unsuccess(*dest, s) for dest, s in refused]
        self.respond(
            pdu,
            status,
            {"message_id": str(ids[0]) if ids else "", "unsuccess_sme": unsuccess},
        )
        self.server.dirty.add(self)
        if self.server.submit_resp is not None:
            self.server.submit_resp.observe(self.clock.seconds() - arrived)

    def _query_sm(self, pdu: Pdu) -> None:
        message_id = _parse_id(pdu.params["message_id"])
        if message_id is None:
            return self.answer(pdu, Status.RINVMSGID)
        d = self.server.store.read(messages.by_client_id, message_id)
        d.addCallback(self._queried, pdu)
        d.addErrback(self._failed, pdu, "query_sm")

    def _queried(self, rows: list[messages.Message], pdu: Pdu) -> None:
        p = pdu.params
        source = addresses.source(p["source_addr"], p["source_addr_ton"])[0]
        if (
            not rows
            or rows[0].account_id != self.account.id
            or (source and source != rows[0].source)
        ):
            return self.answer(pdu, Status.RQUERYFAIL)
        state, since = messages.overall(rows)
        self.answer(
            pdu,
            0,
            {
                "message_id": pdu.params["message_id"],
                "final_date": smpptime.format_absolute(since) if state in FINAL else "",
                "message_state": SMPP_STATE[state],
                "error_code": 0,
            },
        )

    def _cancel_sm(self, pdu: Pdu) -> None:
        p = pdu.params
        message_id = _parse_id(p["message_id"]) if p["message_id"] else None
        destination = ""
        if p["destination_addr"]:
            destination = addresses.e164(p["destination_addr"], p["dest_addr_ton"])
            if destination is None:
                return self.answer(pdu, Status.RINVDSTADR)
        if message_id is None and (p["message_id"] or not destination):
            return self.answer(pdu, Status.RCANCELFAIL)
        d = self.server.store.write(
            messages.cancel,
            self.account.id,
            self.clock.seconds(),
            message_id=message_id,
            service_type=p["service_type"],
            source=addresses.source(p["source_addr"], p["source_addr_ton"])[0],
            destination=destination,
        )
        d.addCallback(lambda n: self.answer(pdu, 0 if n else Status.RCANCELFAIL))
        d.addErrback(self._failed, pdu, "cancel_sm")

    def _replace_sm(self, pdu: Pdu) -> None:
        p = pdu.params
        message_id = _parse_id(p["message_id"])
        if message_id is None:
            return self.answer(pdu, Status.RREPLACEFAIL)
        now = self.clock.seconds()
        try:
            due_at = smpptime.parse(p["schedule_delivery_time"], now)
        except ValueError:
            return self.answer(pdu, Status.RINVSCHED)
        try:
            expires_at = smpptime.parse(p["validity_period"], now)
        except ValueError:
            return self.answer(pdu, Status.RINVEXPIRY)
        if p["registered_delivery"] & 0xE3 not in (0, 1, 2):
            return self.answer(pdu, Status.RINVREGDLVFLG)
        if expires_at is not None:  # the account's maximum bounds a new validity too
            expires_at = min(expires_at, max(due_at or now, now) + self.account.max_validity)
        d = self.server.store.write(
            messages.replace,
            self.account.id,
            message_id,
            now,
            source=addresses.source(p["source_addr"], p["source_addr_ton"])[0],
            body=p["short_message"],
            registered_delivery=p["registered_delivery"],
            due_at=None if due_at is None else max(due_at, now),
            expires_at=expires_at,
            check_body=check_body,
        )
        d.addCallback(lambda status: self.answer(pdu, status))
        d.addErrback(self._failed, pdu, "replace_sm")

    def _failed(self, failure, pdu: Pdu, what: str) -> None:
        if transient(failure):  # the store away (the writer logs it): no traceback a request
            _log.warn("{what} failed: {error}", what=what, error=describe(failure))
        else:
            _log.failure("{what} failed", failure, what=what)
        self.answer(pdu, Status.RSYSERR)

    _HANDLERS = {
        Command.bind_transmitter: _bind,
        Command.bind_receiver: _bind,
        Command.bind_transceiver: _bind,
        Command.submit_sm: _submit_sm,
        Command.data_sm: _data_sm,
        Command.submit_multi: _submit_multi,
        Command.query_sm: _query_sm,
        Command.cancel_sm: _cancel_sm,
        Command.replace_sm: _replace_sm,
    }


def _parse_id(text: str) -> int | None:
    """Our message ids are decimal row ids (ASCII digits: "²".isdigit() is true too)."""
    if not (text.isascii() and text.isdigit()) or int(text) >= 2**63:
        return None
    return int(text)


class SmppServer(ServerFactory):
    noisy = False

    def __init__(
        self,
        config: SmppConfig,
        store: Store,
        acceptor: Acceptor,
        clock,
        metrics=None,
        limits_config: LimitsConfig | None = None,
    ):
        self.config = config
        limits_config = limits_config or LimitsConfig()
        self.guard = limits.BindGuard(limits_config, clock, store)
        self.connections = limits.Connections(limits_config, clock)
        self.metrics = metrics
        self.submit_resp = None if metrics is None else metrics.submit_resp
        self.store = store
        self.acceptor = acceptor
        self.clock = clock
        self.dirty: set[ClientSession] = set()
        self.clients: set[ClientSession] = set()  # every connection, bound or not (shutdown)
        self.sessions: dict[int, set[ClientSession]] = {}  # bound sessions by account id
        self.outbox = None  # the OutboxSender, when the switch delivers
        self.cluster = None  # smsc.cluster.Cluster: binds counted over every node
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._secret = os.urandom(32)
        self._timers = Timers(
            session_init=config.session_init_timer,
            enquire_link=config.enquire_link_timer,
            inactivity=config.inactivity_timer,
            response=config.response_timer,
        )
        store.after_batch(self.flush)

    def buildProtocol(self, addr) -> ClientSession | limits.Refused:
        address = limits.address_key(getattr(addr, "host", "?"))
        cap = self.connections.admit(address)
        if cap is not None:  # closed at once: the clients already connected go on as before
            if self.metrics is not None:
                self.metrics.connections_refused.labels(cap).inc()
            return limits.Refused()
        session = ClientSession(
            self, window=self.config.window, max_pdu_size=self.config.max_pdu_size,
            timers=self._timers,
        )  # fmt: skip
        session.factory = self
        session.address = address
        self.clients.add(session)
        return session

    def flush(self) -> None:
        """After a store batch: one write per session that got answers."""
        dirty, self.dirty = self.dirty, set()
        for session in dirty:
            session.flush()

    # -- binds -----------------------------------------------------------------------------

    def authenticate(self, system_id: str, password: str, host: str = "?"):
        """Deferred: the account, or the BindRefusal refusing a bind from `host`."""
        return self.store.read(self._authenticate, system_id, password, host)

    def _authenticate(self, conn, system_id: str, password: str, host: str):
        # Runs on the store's read pool: the KDF must not hold the reactor.
        account = accounts.get(conn, system_id)
        if account is None:
            return BindRefusal(Status.RINVSYSID, "system_id")
        if not limits.allows(account.networks, host):  # before the password: no KDF for it
            return BindRefusal(Status.RBINDFAIL, "network")
        proof = hmac.new(self._secret, password.encode(), hashlib.sha256).digest()
        if self._verified.get(system_id) != (account.password_hash, proof):
            if not accounts.verify_password(password, account.password_hash):
                return BindRefusal(Status.RINVPASWD, "password")
            self._verified[system_id] = (account.password_hash, proof)
        return account if account.enabled else BindRefusal(Status.RBINDFAIL, "disabled")

    def bind_failed(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.bind_failures.labels(reason).inc()

    def bound(self, session: ClientSession, account: Account) -> Status:
        """Count a new bind against the account's limit; a status if it is over."""
        sessions = self.sessions.setdefault(account.id, set())
        if len(sessions) >= account.max_binds:
            return Status.RBINDFAIL
        sessions.add(session)
        return Status.ROK

    def unbound(self, session: ClientSession) -> None:
        self.sessions.get(session.account.id, set()).discard(session)

    def receivers(self) -> dict[int, list[ClientSession]]:
        """The sessions that can take deliver_sm (receiver and transceiver binds), by account."""
        found = {}
        for account_id, sessions in self.sessions.items():
            rx = [s for s in sessions if s.session.state in _RECEIVING]
            if rx:
                found[account_id] = rx
        return found
