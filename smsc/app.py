"""Wiring: the services a config names, on one Twisted reactor."""

import sys

from twisted.logger import Logger, globalLogBeginner, textFileLogObserver

from .accept import Acceptor
from .config import Config
from .server import SmppServer
from .store import accounts
from .store.db import check_schema, writing
from .store.service import Store

_log = Logger()


def start(config: Config, reactor) -> SmppServer:
    """Start everything on `reactor` (not yet running). Raises SchemaBehind on an old store."""
    store = Store(config.store.url, reactor)
    # What can refuse the start (schema, config accounts, a port in use) runs before the
    # store's threads start: once they run, an exception here would leave a process that
    # never exits.
    check_schema(store.engine)
    _ensure_accounts(store, config, reactor.seconds())
    server = SmppServer(config.smpp, store, Acceptor(store, reactor), reactor)
    port = reactor.listenTCP(config.smpp.port, server, interface=config.smpp.host)
    store.start()
    address = port.getHost()
    _log.info("SMPP listening on {host}:{port}", host=address.host, port=address.port)

    def shutdown():
        # Every acknowledged message is committed already; what is still queued in the
        # writer is flushed (its submitters are not answered: they will resubmit).
        d = port.stopListening()
        d.addCallback(lambda _: store.stop())
        return d

    reactor.addSystemEventTrigger("before", "shutdown", shutdown)
    return server


def _ensure_accounts(store: Store, config: Config, now: float) -> None:
    with writing(store.engine) as conn:
        for account in config.accounts:
            if accounts.get(conn, account.system_id) is None:
                accounts.add(conn, account.system_id, account.password, now)
                _log.info("created account {system_id}", system_id=account.system_id)


def serve(config: Config) -> None:
    from twisted.internet import reactor

    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)], redirectStandardIO=False)
    start(config, reactor)
    reactor.run()
