"""SIGTERM (or SIGINT): the orderly stop of `smsc serve`, within a bound (README, "Faults and
shutdown", and `[shutdown]` in the config).

The first signal stops the reactor; its "before shutdown" trigger (smsc.app) then, in order:
closes the listening ports (no new binds) and stops the claims of the dispatcher and the
outbox; refuses new submits (ESME_RMSGQFUL) while the ones already handed to the store are
committed and answered (`drain_clients`); unbinds the clients, and the carriers, waiting
`unbind_wait` seconds at most for their unbind_resp; writes down what the carriers and clients
answered meanwhile; gives this node's claims back to the cluster; and flushes the writer.

A second signal, or `timeout` seconds after the first, ends the process at once, with exit
status 1. Nothing acknowledged is lost either way: an acknowledgement only ever follows a
commit. What was in flight and unanswered is as after a crash: a client resubmits what it had
no answer for, and the messages claimed are sent again after the next start.
"""

import os
import signal
import sys
import threading
from collections.abc import Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .protocol.session import State

_log = Logger()
_LOOK = 0.05  # seconds between looks at the sessions still open while waiting for them
FORCED = 1  # the exit status when the bound or a second signal cut the shutdown short


def install(reactor, timeout: float) -> None:
    """Handle SIGTERM and SIGINT once the reactor runs (in place of Twisted's own handlers,
    which stop the reactor but never bound the time that takes)."""
    asked: list[str] = []

    def handler(number, _frame) -> None:
        # In a signal handler: no logging here (a write to stdout may be half done).
        name = signal.Signals(number).name
        if asked:
            threading.Thread(target=_exit, args=(f"{name} again",), daemon=True).start()
            return
        asked.append(name)
        watchdog = threading.Timer(timeout, _exit, (f"still running {timeout:g} s after {name}",))
        watchdog.daemon = True
        watchdog.start()
        reactor.callFromThread(_stop, reactor, name, timeout)

    def handle() -> None:
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    reactor.callWhenRunning(handle)


def _stop(reactor, name: str, timeout: float) -> None:
    _log.info(
        "{signal}: shutting down (at most {timeout:g} s; a second {signal} exits at once)",
        signal=name,
        timeout=timeout,
    )
    if reactor.running:
        reactor.stop()


def _exit(why: str) -> None:
    """End the process now, whatever is still running (the writer's thread included: a batch
    it has not committed was not acknowledged)."""
    _log.critical(
        "{why}: exiting now; everything acknowledged is committed, what was in flight is not",
        why=why,
    )
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(FORCED)


# -- the steps smsc.app's shutdown runs ----------------------------------------------------------


def drain_clients(server, acceptor, store, clock, wait: float) -> Deferred:
    """No new submits (refused ESME_RMSGQFUL); once the ones handed to the store before are
    committed and answered, every client session is unbound (those not bound closed), and
    given `wait` seconds to answer. Fires when all are closed, or the wait is over (those
    still open are cut then)."""
    acceptor.closing = True
    # Behind every submit handed to the writer so far: when it is answered, they all are,
    # and their answers are written (the store's after_batch flush runs before our unbind).
    d = store.write(_nothing)
    d.addErrback(lambda _: None)  # the store away: those submits heard of it already
    d.addCallback(lambda _: _unbind_clients(server, clock, wait))
    return d


def _nothing(_conn) -> None:
    return None


def _unbind_clients(server, clock, wait: float) -> Deferred:
    sessions = list(server.clients)
    for client in sessions:
        state = client.session.state
        if client.session.bound:
            client.unbind()  # the answers owed first, then unbind: all in this write
        elif state is State.OPEN:  # not bound: nothing owed but a bind's answer
            client.transport.unregisterProducer()
            client.transport.loseConnection()
        # UNBOUND: the client unbound itself, and closes once its answers are out
    if sessions:
        _log.info("unbinding {n} client sessions", n=len(sessions))
    return _closed(lambda: [c for c in sessions if c.session.state is not State.CLOSED],
                   clock, wait, "client sessions")  # fmt: skip


def drain_carriers(carriers, clock, wait: float) -> Deferred:
    """The carriers' links unbind (they were told to: Carrier.stop); `wait` seconds at most
    for their answers, then the ones still open are cut. What they answered meanwhile (parts
    taken, receipts) reaches the dispatcher and the receipt handler as usual."""
    for carrier in carriers:
        carrier.stop()
    return _closed(
        lambda: [f.link for c in carriers for f in c.factories if f.link is not None],
        clock,
        wait,
        "carrier links",
    )


def _closed(left: Callable[[], list], clock, wait: float, what: str) -> Deferred:
    """Fires when `left()` is empty, or after `wait` seconds: then what is left is cut."""
    if not left():
        return succeed(None)
    done = Deferred()
    deadline = clock.seconds() + wait

    def look() -> None:
        still = left()
        if still and clock.seconds() < deadline:
            return
        loop.stop()
        if still:
            _log.warn(
                "{n} {what} did not answer the unbind within {wait:g} s: cut",
                n=len(still),
                what=what,
                wait=wait,
            )
            for protocol in still:
                if protocol.transport is not None:
                    protocol.transport.abortConnection()
        done.callback(None)

    loop = LoopingCall(look)
    loop.clock = clock
    loop.start(_LOOK, now=False)
    return done
